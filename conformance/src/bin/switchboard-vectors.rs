//! Writes or checks the golden vectors.
//!
//! ```text
//! switchboard-vectors write tests/vectors   # regenerate (scripts/generate.sh)
//! switchboard-vectors check tests/vectors   # verify with the Rust types
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context as _};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(command), Some(dir), None) = (args.next(), args.next(), args.next()) else {
        bail!("usage: switchboard-vectors write|check DIR");
    };
    let dir = PathBuf::from(dir);
    match command.as_str() {
        "write" => {
            switchboard_conformance::vectors::write(&dir)
                .with_context(|| format!("writing vectors to {}", dir.display()))?;
            let count = switchboard_conformance::vectors::all().len();
            println!("wrote {count} vectors to {}", dir.display());
        }
        "check" => {
            let count = switchboard_conformance::vectors::check(&dir)?;
            println!("{count} vectors hold in {}", dir.display());
        }
        other => bail!("unknown command {other:?}; usage: switchboard-vectors write|check DIR"),
    }
    Ok(())
}
