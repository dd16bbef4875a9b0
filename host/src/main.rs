//! `mtp`: the command-line host.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
