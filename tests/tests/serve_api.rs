//! `mtp serve`'s API with plain HTTP: the 401/403 rules, the cookie set by the token URL, no secret in
//! any answer or event, `Last-Event-ID` replay, and a clean stop on SIGTERM.

use std::time::Duration;

use mtp_fakes::fake_mapillary::{MapillaryConfig, MapillaryFaults};
use mtp_tests::harness::mtp_command;
use mtp_tests::serve::{read_events, request, World};

#[test]
fn the_api_refuses_requests_without_the_token_from_foreign_hosts_and_foreign_origins() {
    let world = World::new(4);
    let serve = world.serve(&[]);
    let port = serve.port;
    let host = format!("127.0.0.1:{port}");
    let bearer = format!("Bearer {}", serve.token);
    let get = |path: &str, headers: &[(&str, &str)]| request(port, "GET", path, headers, "");

    // No token, a wrong one, another port's cookie: 401.
    assert_eq!(get("/api/integrations", &[("Host", &host)]).status, 401);
    assert_eq!(
        get(
            "/api/integrations",
            &[("Host", &host), ("Authorization", "Bearer nope")]
        )
        .status,
        401
    );
    let other_cookie = format!("mtp_token_{}={}", port.wrapping_add(1), serve.token);
    assert_eq!(
        get(
            "/api/sequences",
            &[("Host", &host), ("Cookie", &other_cookie)]
        )
        .status,
        401
    );
    assert_eq!(get("/api/events", &[("Host", &host)]).status, 401);
    assert_eq!(get("/", &[("Host", &host)]).status, 401);
    assert_eq!(get("/?token=wrong", &[("Host", &host)]).status, 401);
    // The bearer token works, with either loopback spelling of the host.
    let ok = get(
        "/api/integrations",
        &[("Host", &host), ("Authorization", &bearer)],
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == "mapillary"));
    let localhost = format!("localhost:{port}");
    assert_eq!(
        get(
            "/api/auth",
            &[("Host", &localhost), ("Authorization", &bearer)]
        )
        .status,
        200
    );

    // DNS rebinding: another Host is refused even with the token.
    for foreign in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        "127.0.0.1".to_string(),
    ] {
        let answer = get(
            "/api/integrations",
            &[("Host", &foreign), ("Authorization", &bearer)],
        );
        assert_eq!(answer.status, 403, "Host {foreign}: {}", answer.body);
        assert_eq!(
            get("/", &[("Host", &foreign)]).status,
            403,
            "Host {foreign}"
        );
    }

    // The token URL sets the cookie and leaves the address bar; the cookie then opens the API.
    let opened = get(&format!("/?token={}", serve.token), &[("Host", &host)]);
    assert!(
        (300..400).contains(&opened.status),
        "{}: {}",
        opened.status,
        opened.body
    );
    assert_eq!(opened.header("location"), Some("/"));
    let cookie = opened.header("set-cookie").expect("a cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    assert_eq!(pair, format!("mtp_token_{port}={}", serve.token));
    assert_eq!(get("/", &[("Host", &host), ("Cookie", &pair)]).status, 200);
    assert_eq!(
        get("/api/sequences", &[("Host", &host), ("Cookie", &pair)]).status,
        200
    );

    // CSRF: a state-changing request from a foreign origin is refused, cookie or bearer.
    let post = |headers: &[(&str, &str)]| request(port, "POST", "/api/recheck", headers, "");
    for origin in [
        "http://evil.example",
        "null",
        &format!("http://127.0.0.1:{}", port.wrapping_add(1)),
    ] {
        assert_eq!(
            post(&[("Host", &host), ("Cookie", &pair), ("Origin", origin)]).status,
            403,
            "Origin {origin}"
        );
        assert_eq!(
            post(&[
                ("Host", &host),
                ("Authorization", &bearer),
                ("Origin", origin)
            ])
            .status,
            403,
            "Origin {origin}"
        );
    }
    let own_origin = format!("http://127.0.0.1:{port}");
    let allowed = post(&[("Host", &host), ("Cookie", &pair), ("Origin", &own_origin)]);
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(
        post(&[("Host", &host), ("Authorization", &bearer)]).status,
        200
    );
    // A POST without the token is 401 even from our own origin.
    assert_eq!(
        post(&[("Host", &host), ("Origin", &own_origin)]).status,
        401
    );
}

#[test]
fn no_answer_or_event_carries_a_token_or_secret_and_a_reconnect_replays_what_it_missed() {
    let world = World::new(6);
    // Logged in through the CLI beforehand: the store holds both user tokens.
    for (id, token) in [
        ("mapillary", world.mapillary.config().user_token),
        ("mtpw", world.mtpw.token()),
    ] {
        let auth = mtp_command(world.home.path())
            .args(["auth", id, "--token", &token])
            .output()
            .unwrap();
        assert!(
            auth.status.success(),
            "{}",
            String::from_utf8_lossy(&auth.stderr)
        );
    }
    let mut serve = world.serve(&[]);
    let port = serve.port;
    let host = format!("127.0.0.1:{port}");
    let bearer = format!("Bearer {}", serve.token);
    let headers = [("Host", host.as_str()), ("Authorization", bearer.as_str())];
    let mut answers = Vec::new();

    let path = world.sequence.to_string_lossy().to_string();
    let inspect = request(
        port,
        "POST",
        "/api/inspect",
        &headers,
        &serde_json::json!({ "path": path }).to_string(),
    );
    assert_eq!(inspect.status, 200, "{}", inspect.body);
    assert_eq!(inspect.json()["image_count"], 6);
    answers.push(inspect.body);
    let bad = request(
        port,
        "POST",
        "/api/inspect",
        &headers,
        r#"{"path": "/no/such/dir"}"#,
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .contains("/no/such/dir"),
        "{}",
        bad.body
    );
    let unknown_option = request(
        port,
        "POST",
        "/api/uploads",
        &headers,
        &serde_json::json!({"paths": [path], "options": {"jobz": 2}}).to_string(),
    );
    assert_eq!(unknown_option.status, 400, "{}", unknown_option.body);

    // One upload at a time per sequence: the same sequence twice in one request is refused whole.
    let twice = request(
        port,
        "POST",
        "/api/uploads",
        &headers,
        &serde_json::json!({"paths": [path, path]}).to_string(),
    );
    assert_eq!(twice.status, 409, "{}", twice.body);
    assert!(twice.json()["error"]
        .as_str()
        .unwrap()
        .contains("already being uploaded"));
    let started = request(
        port,
        "POST",
        "/api/uploads",
        &headers,
        &serde_json::json!({"paths": [path], "options": {"jobs": 2}}).to_string(),
    );
    assert_eq!(started.status, 202, "{}", started.body);
    let id = started.json()["id"].as_str().unwrap().to_string();
    let finished = |events: &[(u64, serde_json::Value)]| {
        events.iter().any(|(_, e)| {
            e["type"] == "upload"
                && e["upload"] == id.as_str()
                && e["status"] != "queued"
                && e["status"] != "running"
        })
    };
    let events = read_events(&serve, None, Duration::from_secs(120), finished);
    assert!(finished(&events), "the upload did not finish: {events:?}");
    let results: Vec<&serde_json::Value> = events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e["type"] == "result" && e["upload"] == id.as_str())
        .collect();
    let mapillary = results
        .iter()
        .find(|e| e["integration"] == "mapillary")
        .expect("a Mapillary result");
    assert_eq!(mapillary["state"], "published", "{events:?}");
    assert!(!mapillary["keys"]["sequence_key"]
        .as_str()
        .unwrap()
        .is_empty());
    let mtpw = results
        .iter()
        .find(|e| e["integration"] == "mtpw")
        .expect("an MTPW result");
    assert_eq!(mtpw["state"], "published", "{events:?}");
    // Progress events name their upload, sequence and integration, and carry ids in order.
    let progress: Vec<&(u64, serde_json::Value)> = events
        .iter()
        .filter(|(_, e)| e["type"] == "progress")
        .collect();
    assert!(!progress.is_empty());
    assert!(progress.iter().all(|(_, e)| e["upload"] == id.as_str()
        && e["sequence"].is_string()
        && e["integration"].is_string()));
    assert!(
        events.windows(2).all(|w| w[0].0 < w[1].0),
        "event ids are not increasing"
    );

    // A client that saw up to event N gets exactly the events after N.
    let (cut, _) = events[events.len() / 2];
    let replayed = read_events(&serve, Some(cut), Duration::from_secs(30), |e| {
        e.last()
            .is_some_and(|(last, _)| *last >= events.last().unwrap().0)
    });
    let expected: Vec<u64> = events
        .iter()
        .map(|(i, _)| *i)
        .filter(|i| *i > cut)
        .collect();
    let got: Vec<u64> = replayed
        .iter()
        .map(|(i, _)| *i)
        .filter(|i| *i <= events.last().unwrap().0)
        .collect();
    assert_eq!(got, expected);

    for path in [
        "/api/integrations",
        "/api/sequences",
        "/api/auth",
        "/api/uploads",
    ] {
        let answer = request(port, "GET", path, &headers, "");
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        answers.push(answer.body);
    }
    let sequences = answers[answers.len() - 3].clone();
    assert!(sequences.contains("published"), "{sequences}");
    answers.extend(events.iter().map(|(_, e)| e.to_string()));
    let everything = answers.join("\n");
    for secret in world.secrets().iter().chain([&serve.token]) {
        assert!(
            !everything.contains(secret.as_str()),
            "a secret leaked: {secret}"
        );
    }

    // SIGTERM: the server stops cleanly.
    // SAFETY: kill(2) on the PID of the child this test started.
    let sent = unsafe { libc::kill(serve.pid() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = serve
        .wait_exit(Duration::from_secs(60))
        .expect("mtp serve did not stop on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", serve.stderr_text());
    assert!(
        serve.stderr_text().contains("stopped"),
        "{}",
        serve.stderr_text()
    );
}

fn authorise_by_cli(world: &World) {
    for (id, token) in [
        ("mapillary", world.mapillary.config().user_token),
        ("mtpw", world.mtpw.token()),
    ] {
        let auth = mtp_command(world.home.path())
            .args(["auth", id, "--token", &token])
            .output()
            .unwrap();
        assert!(
            auth.status.success(),
            "{}",
            String::from_utf8_lossy(&auth.stderr)
        );
    }
}

fn start_upload(serve: &mtp_tests::serve::Serve, path: &str) -> String {
    let host = format!("127.0.0.1:{}", serve.port);
    let bearer = format!("Bearer {}", serve.token);
    let started = request(
        serve.port,
        "POST",
        "/api/uploads",
        &[("Host", &host), ("Authorization", &bearer)],
        &serde_json::json!({"paths": [path], "options": {"jobs": 1}}).to_string(),
    );
    assert_eq!(started.status, 202, "{}", started.body);
    started.json()["id"].as_str().unwrap().to_string()
}

fn has_advanced(events: &[(u64, serde_json::Value)], upload: &str) -> bool {
    events
        .iter()
        .any(|(_, e)| e["upload"] == upload && e["event"] == "advance")
}

#[test]
fn cancel_stops_a_running_upload_and_sigterm_mid_upload_exits_cleanly_keeping_the_record() {
    let world = World::with_mapillary(
        8,
        MapillaryConfig {
            faults: MapillaryFaults {
                // Slow enough that the cancel and the signal land mid-upload.
                throttle_bytes_per_sec: Some(150_000),
                ..MapillaryFaults::default()
            },
            ..MapillaryConfig::default()
        },
    );
    authorise_by_cli(&world);
    let mut serve = world.serve(&[]);
    let path = world.sequence.to_string_lossy().to_string();

    let first = start_upload(&serve, &path);
    let events = read_events(&serve, None, Duration::from_secs(60), |e| {
        has_advanced(e, &first)
    });
    assert!(has_advanced(&events, &first), "{events:?}");
    let host = format!("127.0.0.1:{}", serve.port);
    let bearer = format!("Bearer {}", serve.token);
    let cancel = request(
        serve.port,
        "POST",
        &format!("/api/uploads/{first}/cancel"),
        &[("Host", &host), ("Authorization", &bearer)],
        "",
    );
    assert_eq!(cancel.status, 200, "{}", cancel.body);
    let ended = |events: &[(u64, serde_json::Value)]| {
        events.iter().find_map(|(_, e)| {
            (e["type"] == "upload"
                && e["upload"] == first.as_str()
                && !matches!(e["status"].as_str(), Some("queued" | "running")))
            .then(|| e["status"].clone())
        })
    };
    let events = read_events(&serve, None, Duration::from_secs(60), |e| {
        ended(e).is_some()
    });
    assert_eq!(
        ended(&events),
        Some(serde_json::json!("cancelled")),
        "{events:?}"
    );
    assert!(
        world.mapillary.stats().uploaded_sequences().is_empty(),
        "a cancelled upload published"
    );

    // The sequence is free again; this time the server itself is stopped mid-upload.
    let second = start_upload(&serve, &path);
    let events = read_events(&serve, None, Duration::from_secs(60), |e| {
        has_advanced(e, &second)
    });
    assert!(has_advanced(&events, &second), "{events:?}");
    // SAFETY: kill(2) on the PID of the child this test started.
    assert_eq!(
        unsafe { libc::kill(serve.pid() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = serve
        .wait_exit(Duration::from_secs(60))
        .expect("mtp serve did not stop on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", serve.stderr_text());
    assert!(
        serve
            .stderr_text()
            .contains("stopping uploads at their next safe point"),
        "{}",
        serve.stderr_text()
    );
    assert!(world.mapillary.stats().uploaded_sequences().is_empty());

    // What was sent is recorded: the CLI finishes the job from there and publishes once.
    world.mapillary.set_faults(MapillaryFaults::default());
    let upload = mtp_command(world.home.path())
        .args(["upload", &path])
        .output()
        .unwrap();
    assert!(
        upload.status.success(),
        "{}{}",
        String::from_utf8_lossy(&upload.stdout),
        String::from_utf8_lossy(&upload.stderr)
    );
    assert_eq!(world.mapillary.stats().uploaded_sequences().len(), 1);
}

#[test]
fn waiting_sequences_are_rechecked_periodically_and_the_results_reach_the_stream() {
    let world = World::with_mapillary(
        3,
        MapillaryConfig {
            // Mapillary "processes" for a while: the upload ends waiting, a re-check publishes.
            publish_delay: Duration::from_secs(2),
            ..MapillaryConfig::default()
        },
    );
    authorise_by_cli(&world);
    let serve = world.serve(&["--recheck-secs", "1"]);
    let upload = start_upload(&serve, &world.sequence.to_string_lossy());
    let published_by_recheck = |events: &[(u64, serde_json::Value)], id: &str| {
        events.iter().any(|(_, e)| {
            e["type"] == "result"
                && e["recheck"] == true
                && e["integration"] == id
                && e["state"] == "published"
        })
    };
    let events = read_events(&serve, None, Duration::from_secs(120), |e| {
        published_by_recheck(e, "mapillary") && published_by_recheck(e, "mtpw")
    });
    assert!(
        published_by_recheck(&events, "mapillary") && published_by_recheck(&events, "mtpw"),
        "{events:?}"
    );
    let own = events
        .iter()
        .find(|(_, e)| {
            e["type"] == "result"
                && e["upload"] == upload.as_str()
                && e["integration"] == "mapillary"
        })
        .expect("the upload's own Mapillary result");
    assert_ne!(own.1["state"], "published", "{own:?}");
}

/// Posts `options` for `path` to `POST /api/uploads`.
fn post_upload(
    serve: &mtp_tests::serve::Serve,
    path: &str,
    options: serde_json::Value,
) -> mtp_tests::serve::Answer {
    let host = format!("127.0.0.1:{}", serve.port);
    let bearer = format!("Bearer {}", serve.token);
    request(
        serve.port,
        "POST",
        "/api/uploads",
        &[("Host", &host), ("Authorization", &bearer)],
        &serde_json::json!({"paths": [path], "options": options}).to_string(),
    )
}

/// The status an upload ended with, from the stream.
fn ended_status(serve: &mtp_tests::serve::Serve, upload: &str) -> Vec<(u64, serde_json::Value)> {
    let ended = |events: &[(u64, serde_json::Value)]| {
        events.iter().any(|(_, e)| {
            e["type"] == "upload"
                && e["upload"] == upload
                && !matches!(e["status"].as_str(), Some("queued" | "running"))
        })
    };
    let events = read_events(serve, None, Duration::from_secs(120), ended);
    assert!(ended(&events), "{upload} never ended: {events:?}");
    events
}

fn upload_view(serve: &mtp_tests::serve::Serve, id: &str) -> serde_json::Value {
    let host = format!("127.0.0.1:{}", serve.port);
    let bearer = format!("Bearer {}", serve.token);
    let list = request(
        serve.port,
        "GET",
        "/api/uploads",
        &[("Host", &host), ("Authorization", &bearer)],
        "",
    );
    list.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id)
        .cloned()
        .expect("the upload is listed")
}

#[test]
fn every_upload_option_of_the_cli_goes_through_post_api_uploads() {
    let world = World::new(3);
    authorise_by_cli(&world);
    let serve = world.serve(&[]);
    let path = world.sequence.to_string_lossy().to_string();

    // A bad value of any option is refused naming it, and nothing starts.
    for (options, named) in [
        (serde_json::json!({"jobs": 0}), "options.jobs"),
        (serde_json::json!({"bwlimit": "fast"}), "options.bwlimit"),
        (
            serde_json::json!({"time_offset": "+99:00"}),
            "options.time_offset",
        ),
        (
            serde_json::json!({"integration_options": ["mapillary.colour=red"]}),
            "colour",
        ),
        (
            serde_json::json!({"integration_options": ["nobody.jobs=1"]}),
            "nobody",
        ),
        (
            serde_json::json!({"integration_options": ["mapillary.jobs=99"]}),
            "jobs",
        ),
        (
            serde_json::json!({"transport": "Earth/Teleport"}),
            "Teleport",
        ),
        (serde_json::json!({"colour": "red"}), "colour"),
    ] {
        let answer = post_upload(&serve, &path, options.clone());
        assert_eq!(answer.status, 400, "{options}: {}", answer.body);
        assert!(answer.body.contains(named), "{options}: {}", answer.body);
    }

    // Metadata, tags, the per-integration option, bandwidth cap, force and add-new-images in a dry run:
    // the sequence the integrations receive carries the overrides, and nothing is published.
    let all = serde_json::json!({
        "dry_run": true, "skip_invalid": true, "jobs": 2, "republish": true, "force": true,
        "add_new_images": true, "bwlimit": "10M", "integration_options": ["mapillary.jobs=3"],
        "name": "Canal by bike", "description": "Along the towpath", "transport": "Bicycle",
        "tags": ["canal", "towpath"], "time_offset": "+02:00",
    });
    let started = post_upload(&serve, &path, all.clone());
    assert_eq!(started.status, 202, "{}", started.body);
    let id = started.json()["id"].as_str().unwrap().to_string();
    let events = ended_status(&serve, &id);
    let view = upload_view(&serve, &id);
    assert_eq!(view["status"], "done", "{view}\n{events:?}");
    for (key, value) in all.as_object().unwrap() {
        assert_eq!(&view["options"][key], value, "options.{key}: {view}");
    }
    let sequence = &view["sequences"][0];
    assert_eq!(sequence["name"], "Canal by bike", "{view}");
    assert_eq!(sequence["description"], "Along the towpath", "{view}");
    assert_eq!(sequence["tags"], serde_json::json!(["canal", "towpath"]));
    assert!(
        sequence["transport"].to_string().contains("Bicycle"),
        "{view}"
    );
    let results: Vec<&serde_json::Value> = events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e["type"] == "result" && e["upload"] == id.as_str())
        .collect();
    let mapillary = results
        .iter()
        .find(|e| e["integration"] == "mapillary")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(mapillary["state"], "dry_run", "{mapillary}");
    assert_eq!(mapillary["name"], "Canal by bike");
    assert!(world.mapillary.stats().uploaded_sequences().is_empty());

    // No-publish sends every byte and publishes nothing.
    let started = post_upload(
        &serve,
        &path,
        serde_json::json!({"no_publish": true, "jobs": 1}),
    );
    assert_eq!(started.status, 202, "{}", started.body);
    let id = started.json()["id"].as_str().unwrap().to_string();
    let events = ended_status(&serve, &id);
    let mapillary = events
        .iter()
        .map(|(_, e)| e)
        .find(|e| {
            e["type"] == "result" && e["upload"] == id.as_str() && e["integration"] == "mapillary"
        })
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(
        mapillary["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("not published (no_publish): uploaded 3 images"),
        "{mapillary}"
    );
    assert!(world.mapillary.stats().uploaded_sequences().is_empty());
}

#[test]
fn a_login_listener_on_another_port_checks_host_and_an_unknown_id_leaves_the_login_alone() {
    let world = World::new(1);
    // Mapillary's redirect on another loopback port: the server listens there during the login.
    let other = mtp_tests::serve::free_port();
    let env_path = world.home.path().join(".env");
    let env = std::fs::read_to_string(&env_path).unwrap().replace(
        &format!("127.0.0.1:{}/mapillary/callback", world.port),
        &format!("127.0.0.1:{other}/mapillary/callback"),
    );
    std::fs::write(&env_path, env).unwrap();
    let serve = world.serve(&[]);
    let host = format!("127.0.0.1:{}", serve.port);
    let bearer = format!("Bearer {}", serve.token);
    let post = |path: &str| {
        request(
            serve.port,
            "POST",
            path,
            &[("Host", &host), ("Authorization", &bearer)],
            "",
        )
    };
    let started = post("/api/auth/mapillary");
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(started.json()["landing"], "loopback", "{}", started.body);

    // An unknown id is refused before anything else: the login under way goes on.
    let unknown = post("/api/auth/nobody");
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(
        unknown.body.contains("no integration nobody"),
        "{}",
        unknown.body
    );

    // The listener answers only to its own loopback Host (as the server does): no DNS rebinding.
    let callback = |host: &str| request(other, "GET", "/mapillary/callback", &[("Host", host)], "");
    for foreign in [
        "evil.example".to_string(),
        format!("evil.example:{other}"),
        format!("127.0.0.1:{}", serve.port),
    ] {
        let answer = callback(&foreign);
        assert_eq!(answer.status, 403, "Host {foreign}: {}", answer.body);
    }
    // Its own Host reaches the waiting login (the page that carries a fragment back).
    let answer = callback(&format!("127.0.0.1:{other}"));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.body.contains("Finishing the login"),
        "{}",
        answer.body
    );
}

/// `mtp auth status` in words, as a user reads it.
fn auth_status_text(world: &World) -> String {
    let status = mtp_command(world.home.path())
        .args(["auth", "status"])
        .output()
        .unwrap();
    assert!(status.status.success());
    String::from_utf8_lossy(&status.stdout).into_owned()
}

#[test]
fn logging_out_by_the_api_or_the_cli_deletes_the_token_and_auth_status_says_so() {
    let world = World::new(1);
    authorise_by_cli(&world);
    let serve = world.serve(&[]);
    let host = format!("127.0.0.1:{}", serve.port);
    let bearer = format!("Bearer {}", serve.token);
    let call = |method: &str, path: &str| {
        request(
            serve.port,
            method,
            path,
            &[("Host", &host), ("Authorization", &bearer)],
            "",
        )
    };
    let authorised = |id: &str| {
        let rows = call("GET", "/api/auth").json();
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["integration"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no auth row for {id}: {rows}"));
        row["authorised"] == true
    };
    assert!(authorised("mtpw") && authorised("mapillary"));

    let out = call("POST", "/api/auth/mtpw/logout");
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.json()["logged_out"], true, "{}", out.body);
    assert_eq!(out.json()["was_logged_in"], true, "{}", out.body);
    assert!(!authorised("mtpw"), "MTPW still authorised after logout");
    assert!(
        authorised("mapillary"),
        "logging out of MTPW touched Mapillary"
    );
    // The page learns it from the stream (and raises no error banner: no `error`).
    let events = read_events(&serve, None, Duration::from_secs(5), |events| {
        events
            .iter()
            .any(|(_, e)| e["type"] == "auth" && e["logged_out"] == true)
    });
    let event = events
        .iter()
        .find(|(_, e)| e["type"] == "auth" && e["logged_out"] == true)
        .map(|(_, e)| e.clone())
        .expect("an auth event for the logout");
    assert_eq!(event["integration"], "mtpw");
    assert_eq!(event["authorised"], false);
    assert!(event.get("error").is_none(), "{event}");
    // Twice is not an error: it says it was not logged in.
    let again = call("POST", "/api/auth/mtpw/logout");
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["was_logged_in"], false, "{}", again.body);
    let unknown = call("POST", "/api/auth/nobody/logout");
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(
        unknown.body.contains("no integration nobody"),
        "{}",
        unknown.body
    );

    // The CLI sees the same store: MTPW not authorised, with how to log in.
    let text = auth_status_text(&world);
    let mtpw_line = text.lines().find(|l| l.starts_with("mtpw")).unwrap_or("");
    assert!(
        mtpw_line.contains("not authorised") && mtpw_line.contains("mtp auth mtpw"),
        "{text}"
    );

    // The CLI twin, for Mapillary.
    let logout = mtp_command(world.home.path())
        .args(["auth", "logout", "mapillary"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&logout.stdout);
    assert!(
        logout.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&logout.stderr)
    );
    assert!(said.contains("mapillary: logged out"), "{said}");
    let text = auth_status_text(&world);
    let mapillary_line = text
        .lines()
        .find(|l| l.starts_with("mapillary"))
        .unwrap_or("");
    assert!(
        mapillary_line.contains("not authorised") && mapillary_line.contains("mtp auth mapillary"),
        "{text}"
    );
    assert!(
        !authorised("mapillary"),
        "the server still sees Mapillary's login"
    );
    for (args, says) in [
        (vec!["auth", "logout", "nobody"], "no integration nobody"),
        (vec!["auth", "logout"], "needs the integration"),
        (vec!["auth", "mtpw", "extra"], "unexpected argument"),
    ] {
        let refused = mtp_command(world.home.path()).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn the_folder_picker_lists_folders_under_home_only_and_relative_paths_start_there() {
    let world = World::new(1);
    // The user's home is a folder of the scratch home, which stays the server's working directory:
    // a relative path resolved against that would not be found.
    let home = world.home.path().canonicalize().unwrap().join("me");
    std::fs::create_dir_all(home.join(".hidden")).unwrap();
    std::fs::rename(&world.sequence, home.join("canal-walk")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), home.join("out")).unwrap();
    std::os::unix::fs::symlink(home.join("canal-walk"), home.join("walk-link")).unwrap();
    let serve = world.serve_with_home(&home, &[]);
    let call = |method: &str, path: &str, body: &str| serve.call(method, path, body);
    let names = |listing: &serde_json::Value| -> Vec<String> {
        listing["folders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    };

    let top = call("GET", "/api/folders", "");
    assert_eq!(top.status, 200, "{}", top.body);
    let top = top.json();
    assert_eq!(top["path"], home.display().to_string(), "{top}");
    assert!(top["parent"].is_null(), "{top}");
    let listed = names(&top);
    assert!(listed.contains(&"canal-walk".to_string()), "{listed:?}");
    // A link inside home is listed (resolved); one leading out is not; hidden folders are not.
    assert!(listed.contains(&"walk-link".to_string()), "{listed:?}");
    assert!(!listed.contains(&"out".to_string()), "{listed:?}");
    assert!(!listed.contains(&".hidden".to_string()), "{listed:?}");

    let walk = call("GET", "/api/folders?path=canal-walk", "");
    assert_eq!(walk.status, 200, "{}", walk.body);
    let walk = walk.json();
    assert_eq!(walk["images"], 1, "{walk}");
    assert_eq!(walk["parent"], home.display().to_string(), "{walk}");

    for refused in [
        "/api/folders?path=..",
        "/api/folders?path=canal-walk/../..",
        "/api/folders?path=/etc",
        "/api/folders?path=out",
    ] {
        let answer = call("GET", refused, "");
        assert_eq!(answer.status, 400, "{refused}: {}", answer.body);
        assert!(
            answer
                .body
                .contains("only folders inside your home directory"),
            "{refused}: {}",
            answer.body
        );
    }
    let missing = call("GET", "/api/folders?path=nowhere", "");
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert!(missing.body.contains("nowhere"), "{}", missing.body);

    // The page's relative path is taken from the home directory, not the server's working directory.
    let inspected = call("POST", "/api/inspect", r#"{"path": "canal-walk"}"#);
    assert_eq!(inspected.status, 200, "{}", inspected.body);
    assert_eq!(inspected.json()["image_count"], 1, "{}", inspected.body);
}

#[test]
fn thumbnails_are_the_photos_embedded_ones_for_inspected_sequences_only() {
    let world = World::new(2);
    let mut photos: Vec<_> = std::fs::read_dir(&world.sequence)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    photos.sort();
    let with = photos[0].clone();
    let without = photos[1].clone();
    let thumbnail = mtp_tests::serve::add_exif_thumbnail(&with);
    let name = |p: &std::path::Path| p.file_name().unwrap().to_string_lossy().into_owned();
    let serve = world.serve(&[]);
    let call = |method: &str, path: &str, body: &str| serve.call(method, path, body);
    let dir = world.sequence.display().to_string();
    let url = |file: &str| format!("/api/thumbnail?path={dir}&file={file}");

    // Not inspected yet: nothing is served.
    let early = call("GET", &url(&name(&with)), "");
    assert_eq!(early.status, 404, "{}", early.body);
    assert!(early.body.contains("inspect it first"), "{}", early.body);

    let inspected = call("POST", "/api/inspect", &format!(r#"{{"path": "{dir}"}}"#));
    assert_eq!(inspected.status, 200, "{}", inspected.body);
    let served = call("GET", &url(&name(&with)), "");
    assert_eq!(served.status, 200, "{}", served.body);
    assert_eq!(served.header("content-type"), Some("image/jpeg"));
    // The helper reads bodies as text: the length is exact, the text as near as lossy UTF-8 allows.
    let length = thumbnail.len().to_string();
    assert_eq!(served.header("content-length"), Some(length.as_str()));
    assert_eq!(served.body, String::from_utf8_lossy(&thumbnail));
    let none = call("GET", &url(&name(&without)), "");
    assert_eq!(none.status, 404, "{}", none.body);
    assert!(none.body.contains("no embedded thumbnail"), "{}", none.body);
    for other in ["..%2F.env", ".env", "state"] {
        let refused = call("GET", &url(other), "");
        assert_eq!(refused.status, 400, "{other}: {}", refused.body);
        assert!(
            refused.body.contains("not an image of that sequence"),
            "{other}: {}",
            refused.body
        );
    }
}

#[test]
fn map_tiles_come_from_the_configured_server_only_and_none_means_none() {
    let world = World::new(1);
    for (extra, tiles, images) in [
        (
            vec!["--tiles", "http://127.0.0.1:9/{z}/{x}/{y}.png"],
            serde_json::json!({"url": "http://127.0.0.1:9/{z}/{x}/{y}.png",
                "attribution": "© OpenStreetMap contributors", "attribution_url": null}),
            "img-src 'self' data: http://127.0.0.1:9;",
        ),
        // The harness sets MTP_TILES=none: tests never reach the internet.
        (vec![], serde_json::Value::Null, "img-src 'self' data:;"),
    ] {
        let serve = world.serve(&extra);
        let host = format!("127.0.0.1:{}", serve.port);
        let bearer = format!("Bearer {}", serve.token);
        let config = request(
            serve.port,
            "GET",
            "/api/config",
            &[("Host", &host), ("Authorization", &bearer)],
            "",
        );
        assert_eq!(config.status, 200, "{}", config.body);
        assert_eq!(config.json()["tiles"], tiles, "{extra:?}");
        let script = request(serve.port, "GET", "/app.js", &[("Host", &host)], "");
        let policy = script.header("content-security-policy").unwrap_or_default();
        assert!(policy.contains(images), "{extra:?}: {policy}");
        assert!(policy.contains("default-src 'self'"), "{policy}");
    }
    let refused = mtp_command(world.home.path())
        .args(["serve", "--tiles", "https://tiles.example/tile.png"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("needs {z}, {x} and {y}"), "{said}");
}
