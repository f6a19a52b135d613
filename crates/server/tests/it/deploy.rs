//! The deployment files and the documentation agree with the application: every variable
//! they pass or document is a key the app reads, and README.md's Configuration table and
//! `.env.example` document every key. The keys are the settings types' field names
//! (`server::config::keys`), so a key added to a settings struct fails these tests until it
//! is documented.

use std::collections::BTreeSet;
use std::path::PathBuf;

use yaml_rust2::{Yaml, YamlLoader};

fn repo_file(name: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every key the application reads, upper case.
fn keys() -> Vec<String> {
    server::config::keys()
}

/// The keys, and RUST_LOG (read by the log filter, not by the settings).
fn known() -> BTreeSet<String> {
    keys().into_iter().chain(["RUST_LOG".to_owned()]).collect()
}

#[test]
fn docker_compose_parses_and_passes_only_known_keys_to_the_app() {
    let docs = YamlLoader::load_from_str(&repo_file("docker-compose.yml"))
        .expect("docker-compose.yml is YAML");
    let compose = &docs[0];
    let app = &compose["services"]["app"];
    assert!(!app.is_badvalue(), "docker-compose.yml has an app service");
    let environment = app["environment"]
        .as_hash()
        .expect("app.environment is a map");
    assert!(!environment.is_empty());
    for key in environment.keys() {
        let key = key.as_str().unwrap();
        assert!(
            known().contains(key),
            "docker-compose.yml passes {key}, which the app does not read"
        );
    }
    assert_eq!(
        app["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy"),
        "the app waits for a healthy database"
    );
    let postgres = &compose["services"]["postgres"];
    assert_eq!(postgres["image"].as_str(), Some("postgres:16"));
    assert!(!postgres["healthcheck"].is_badvalue() && !postgres["volumes"].is_badvalue());
    assert!(
        matches!(environment.get(&Yaml::from_str("RUN_MIGRATIONS")), Some(v) if v.as_str() == Some("true"))
    );
}

#[test]
fn dotenv_example_documents_every_key_and_only_known_ones() {
    let example = repo_file(".env.example");
    let mut documented = BTreeSet::new();
    for line in example.lines() {
        // Both `KEY=value` and the commented-out `# KEY=value` document a key.
        let line = line.trim_start_matches('#').trim();
        if let Some((key, _)) = line.split_once('=')
            && !key.is_empty()
            && key.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        {
            assert!(
                known().contains(key),
                ".env.example lists {key}, which the app does not read"
            );
            documented.insert(key.to_owned());
        }
    }
    for key in keys() {
        assert!(
            documented.contains(&key),
            ".env.example does not document {key}"
        );
    }
}

#[test]
fn readme_configuration_table_documents_every_key_and_only_known_ones() {
    let readme = repo_file("README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("README.md has a Configuration section");
    let section = section.split("\n## ").next().unwrap();
    let mut documented = BTreeSet::new();
    for row in section.lines().filter(|line| line.starts_with("| `")) {
        // The first cell names the key, or several: `ORDER_RATE_LIMIT_PER_MINUTE` / `ORDER_RATE_LIMIT_BURST`.
        let first_cell = row.trim_start_matches('|').split('|').next().unwrap();
        for key in first_cell.split('`').skip(1).step_by(2) {
            assert!(
                known().contains(key),
                "README.md's Configuration table lists {key}, which the app does not read"
            );
            documented.insert(key.to_owned());
        }
    }
    assert!(documented.contains("RUST_LOG"), "the table was found");
    for key in keys() {
        assert!(
            documented.contains(&key),
            "README.md's Configuration table does not document {key}"
        );
    }
}

#[test]
fn dockerfile_sets_only_known_keys_and_checks_health() {
    let dockerfile = repo_file("Dockerfile");
    // Each ENV instruction, joined across its backslash continuations.
    let mut assignments = Vec::new();
    let mut in_env = false;
    for line in dockerfile.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("ENV ") {
            in_env = true;
            assignments.push(rest.trim_end_matches('\\').to_owned());
        } else if in_env {
            assignments.push(line.trim_end_matches('\\').to_owned());
        }
        if in_env && !line.ends_with('\\') {
            in_env = false;
        }
    }
    assert!(
        !assignments.is_empty(),
        "the Dockerfile sets production defaults"
    );
    for assignment in assignments.iter().flat_map(|a| a.split_whitespace()) {
        let key = assignment.split('=').next().unwrap();
        assert!(
            known().contains(key),
            "the Dockerfile sets {key}, which the app does not read"
        );
    }
    assert!(dockerfile.contains("HEALTHCHECK"));
    assert!(
        dockerfile.contains("USER botshop"),
        "the runtime image runs as a non-root user"
    );
}
