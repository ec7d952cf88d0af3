//! Writes screenshots/*.svg from the real rendering code on the seeded fixture:
//! `cargo run --example screenshots`.

use hookctl::tui::{fixture, render, svg, theme::Theme};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = fixture::seed(&dir.path().join("fixture.db")).await?;
    let app = fixture::app(&*store).await?;
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
    std::fs::create_dir_all(&out)?;
    for (name, view) in render::views(&app) {
        let buf = render::buffer(&view, 100, 30, Theme { color: true });
        let path = out.join(format!("{name}.svg"));
        std::fs::write(&path, svg::to_svg(&buf))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
