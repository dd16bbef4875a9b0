//! HTTP harness shared by both fakes.
//!
//! We run our own accept loop rather than `axum::serve` because fault injection needs to drop a
//! client's TCP connection in the middle of a request body, which axum's server gives handlers no
//! way to do. Each connection gets a [`ConnControl`] in its request extensions; a handler that
//! calls [`ConnControl::kill`] makes the connection task drop the socket at once.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

/// Lock a mutex, ignoring poisoning: a panicking handler must not take the whole fake down.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Per-connection control handed to handlers through request extensions.
#[derive(Clone, Default)]
pub(crate) struct ConnControl {
    kill: Arc<Notify>,
}

impl ConnControl {
    /// Drop this request's TCP connection without a response. Never returns: the future is
    /// dropped together with the connection.
    pub(crate) async fn kill(&self) -> ! {
        // notify_one stores a permit, so the connection task sees it even if it is not waiting yet.
        self.kill.notify_one();
        std::future::pending().await
    }
}

/// Bind 127.0.0.1:`port` (0 = any free port).
pub(crate) async fn bind(port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await
}

async fn accept_loop(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Transient accept errors (EMFILE, ECONNABORTED) must not stop the server.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let ctrl = ConnControl::default();
            let kill = ctrl.kill.clone();
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ctrl.clone());
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = kill.notified() => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

enum RunKind {
    Task(tokio::task::JoinHandle<()>),
    Thread(Option<std::thread::JoinHandle<()>>),
}

/// A server running either as a task on the caller's runtime or on its own thread and runtime.
pub(crate) struct Running {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    kind: RunKind,
}

impl Running {
    /// Serve on the current tokio runtime.
    pub(crate) fn spawn(listener: TcpListener, router: Router) -> io::Result<Running> {
        let addr = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, router, rx));
        Ok(Running {
            addr,
            shutdown: tx,
            kind: RunKind::Task(task),
        })
    }

    /// Serve on a dedicated thread with its own multi-threaded runtime, for synchronous tests.
    /// `setup` runs on that runtime and returns a value for the caller plus what to serve.
    pub(crate) fn spawn_thread<T, F, Fut>(name: &str, setup: F) -> io::Result<(T, Running)>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<(T, TcpListener, Router)>>,
    {
        type Ready<T> = io::Result<(T, SocketAddr, watch::Sender<bool>)>;
        let (tx, rx) = std::sync::mpsc::channel::<Ready<T>>();
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let (value, listener, router) = match setup().await {
                        Ok(v) => v,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let addr = match listener.local_addr() {
                        Ok(a) => a,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let (stx, srx) = watch::channel(false);
                    if tx.send(Ok((value, addr, stx))).is_err() {
                        return;
                    }
                    accept_loop(listener, router, srx).await;
                });
            })?;
        let (value, addr, stx) = rx
            .recv()
            .map_err(|_| io::Error::other("fake server thread exited during start-up"))??;
        Ok((
            value,
            Running {
                addr,
                shutdown: stx,
                kind: RunKind::Thread(Some(handle)),
            },
        ))
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting and drop every open connection. Idempotent.
    pub(crate) fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        match &mut self.kind {
            RunKind::Task(task) => task.abort(),
            RunKind::Thread(handle) => {
                if let Some(h) = handle.take() {
                    // Joining from inside the server's own runtime would deadlock; never the case
                    // in practice, but be safe and detach instead.
                    if h.thread().id() != std::thread::current().id() {
                        let _ = h.join();
                    }
                }
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}
