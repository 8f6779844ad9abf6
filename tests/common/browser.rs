//! The real browser that judges report pages: Debian's `chromium`, headless.
use std::path::{Path, PathBuf};
use std::process::Command;

use super::stderr;

/// What headless chromium made of a page: (DOM, screenshot PNG, stderr), or `None` without
/// chromium. Networking goes to a closed port, so anything fetched from elsewhere fails loudly.
pub fn browse(index: &Path, scratch: &Path) -> Option<(String, PathBuf, String)> {
    if Command::new("chromium").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED the browser checks: no `chromium` on PATH (scripts/setup.sh installs it)"
        );
        return None;
    }
    let url = format!("file://{}", index.canonicalize().unwrap().display());
    let chromium = |extra: &[String]| {
        let profile = tempfile::tempdir_in(scratch).unwrap();
        let o = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--proxy-server=127.0.0.1:9",
                "--proxy-bypass-list=<-loopback>",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium runs");
        assert!(o.status.success(), "chromium: {}", stderr(&o));
        o
    };
    let dom = chromium(&["--dump-dom".into()]);
    let png = scratch.join("page.png");
    let shot = chromium(&[
        format!("--screenshot={}", png.display()),
        "--window-size=1280,2000".into(),
    ]);
    let errors = format!("{}{}", stderr(&dom), stderr(&shot));
    Some((String::from_utf8(dom.stdout).unwrap(), png, errors))
}
