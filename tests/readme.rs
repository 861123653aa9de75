//! The README carries the flag and metric tables exactly as the code
//! generates them (`scripts/update-readme.sh` refreshes them).

use magma_monitor::reference_docs::{flags_markdown, metrics_markdown};

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

fn block<'a>(text: &'a str, name: &str) -> &'a str {
    let start = format!("<!-- {name}:start -->\n");
    let end = format!("\n<!-- {name}:end -->");
    let from = text
        .find(&start)
        .unwrap_or_else(|| panic!("README.md has no {name} block"))
        + start.len();
    let to = text[from..].find(&end).expect("unterminated block") + from;
    &text[from..to]
}

#[test]
fn the_metric_table_is_current() {
    assert_eq!(
        block(&readme(), "catalogue"),
        metrics_markdown().trim_end_matches('\n'),
        "README.md metric table is stale: run scripts/update-readme.sh"
    );
}

#[test]
fn the_flag_tables_are_current() {
    assert_eq!(
        block(&readme(), "flags"),
        flags_markdown().trim_matches('\n'),
        "README.md flag tables are stale: run scripts/update-readme.sh"
    );
}
