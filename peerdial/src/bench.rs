//! `peerdial bench …`: benchmarks run side by side with the peer they are
//! compared with.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Which,
}

#[derive(Subcommand)]
enum Which {}

pub async fn run(args: BenchArgs) -> Result<()> {
    match args.which {}
    #[allow(unreachable_code)]
    {
        bail!("no benchmark chosen")
    }
}
