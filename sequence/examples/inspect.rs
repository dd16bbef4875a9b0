//! Prints the `inspect` summary of a sequence directory: `cargo run -p mtp-sequence --example inspect -- <dir> [--json]`.

use mtp_sequence::{read_sequence, Overrides};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: inspect <dir> [--json]");
        std::process::exit(2);
    };
    let summary = read_sequence(dir.as_ref(), &Overrides::default())?.summary()?;
    if args.iter().any(|a| a == "--json") {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.render_text());
    }
    Ok(())
}
