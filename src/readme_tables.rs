//! The README's tables, read for the tests that hold them to the code (the settings table in
//! `config`, the table of the APIs under "Endpoints" in `api`).

/// The body rows of the table under `## {section}` whose header row starts with `header`,
/// each split into its trimmed cells.
pub(crate) fn rows(section: &str, header: &str) -> Vec<Vec<&'static str>> {
    include_str!("../README.md")
        .split(format!("\n## {section}\n").as_str())
        .nth(1)
        .unwrap_or_else(|| panic!("README: ## {section}"))
        .lines()
        .skip_while(|l| !l.starts_with(header))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect()
}
