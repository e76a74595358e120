//! Client mode: `nhm enroll|verify|identify --server URL` (being written).

/// Arguments of `nhm enroll`.
#[derive(Debug, clap::Args)]
pub struct EnrollArgs {}
/// Arguments of `nhm verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {}
/// Arguments of `nhm identify`.
#[derive(Debug, clap::Args)]
pub struct IdentifyArgs {}

/// Runs `nhm enroll`.
pub fn enroll(_a: EnrollArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
/// Runs `nhm verify`.
pub fn verify(_a: VerifyArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
/// Runs `nhm identify`.
pub fn identify(_a: IdentifyArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
