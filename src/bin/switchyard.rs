//! The `switchyard` command line. Thin: parsing and wiring only; the work lives in the library.

fn main() -> anyhow::Result<()> {
    println!("switchyard {}", env!("CARGO_PKG_VERSION"));
    Ok(())
}
