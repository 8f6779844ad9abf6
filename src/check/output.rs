//! The ways a check run reports: a text summary, JSON, GitHub Actions annotations, JUnit XML.
use serde::Serialize;

use super::eval::Outcome;

/// The results for one file under one rule set.
#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    pub path: String,
    pub rule_set: String,
    pub outcomes: Vec<Outcome>,
}

impl FileResult {
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| !o.passed)
    }
}

fn location(o: &Outcome) -> String {
    o.at.map_or(String::new(), |(a, b)| format!(" at {a:.2}-{b:.2} s"))
}

pub fn text(results: &[FileResult]) -> String {
    let mut s = String::new();
    for r in results {
        for o in r.failures() {
            s.push_str(&format!(
                "FAIL {} [{}] {}: expected {}, got {}{}\n",
                r.path,
                r.rule_set,
                o.rule,
                o.expected,
                o.actual,
                location(o)
            ));
        }
    }
    let checks: usize = results.iter().map(|r| r.outcomes.len()).sum();
    let failed: usize = results.iter().map(|r| r.failures().count()).sum();
    let files_failed = results
        .iter()
        .filter(|r| r.failures().next().is_some())
        .count();
    s.push_str(&format!(
        "{} file(s), {checks} check(s): {} passed, {failed} failed ({files_failed} file(s) failing)\n",
        results.len(),
        checks - failed
    ));
    s
}

pub fn json(results: &[FileResult]) -> String {
    let failed: usize = results.iter().map(|r| r.failures().count()).sum();
    serde_json::to_string_pretty(&serde_json::json!({
        "passed": failed == 0,
        "failed_checks": failed,
        "files": results,
    }))
    .expect("results serialize")
}

/// `::error file=…,title=…::message` lines GitHub Actions turns into annotations.
pub fn github(results: &[FileResult]) -> String {
    let escape = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let escape_prop = |s: &str| escape(s).replace(':', "%3A").replace(',', "%2C");
    let mut s = String::new();
    for r in results {
        for o in r.failures() {
            s.push_str(&format!(
                "::error file={},title={}::{}\n",
                escape_prop(&r.path),
                escape_prop(&format!("framepipe check: {} ({})", o.rule, r.rule_set)),
                escape(&format!(
                    "expected {}, got {}{}",
                    o.expected,
                    o.actual,
                    location(o)
                ))
            ));
        }
    }
    s
}

fn xml(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&apos;".into(),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => " ".into(),
            c => c.to_string(),
        })
        .collect()
}

/// JUnit XML: one testsuite per file and rule set, one testcase per rule.
pub fn junit(results: &[FileResult]) -> String {
    let tests: usize = results.iter().map(|r| r.outcomes.len()).sum();
    let failures: usize = results.iter().map(|r| r.failures().count()).sum();
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"framepipe check\" tests=\"{tests}\" failures=\"{failures}\">\n"
    );
    for r in results {
        s.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\">\n",
            xml(&format!("{} [{}]", r.path, r.rule_set)),
            r.outcomes.len(),
            r.failures().count()
        ));
        for o in &r.outcomes {
            let head = format!(
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\"",
                xml(&r.rule_set),
                xml(&o.rule),
                xml(&r.path)
            );
            if o.passed {
                s.push_str(&format!("{head}/>\n"));
            } else {
                let message = format!("expected {}, got {}{}", o.expected, o.actual, location(o));
                s.push_str(&format!(
                    "{head}>\n      <failure type=\"rule\" message=\"{}\">{}</failure>\n    </testcase>\n",
                    xml(&message),
                    xml(&message)
                ));
            }
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}
