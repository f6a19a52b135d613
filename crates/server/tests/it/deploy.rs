//! The deployment files and the documentation agree with the application: every variable
//! they pass or document is a key the app reads, and README.md's Configuration table and
//! `.env.example` document every key. The keys are the settings types' field names
//! (`server::config::keys`), so a key added to a settings struct fails these tests until it
//! is documented.

use std::collections::{BTreeMap, BTreeSet};
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

fn compose() -> Yaml {
    YamlLoader::load_from_str(&repo_file("docker-compose.yml"))
        .expect("docker-compose.yml is YAML")
        .remove(0)
}

/// The settings of docker-compose's `backup` service that `.env` may change: each
/// `KEY: ${KEY:-default}` of its environment, with its default.
fn backup_settings() -> BTreeMap<String, String> {
    let compose = compose();
    let environment = compose["services"]["backup"]["environment"]
        .as_hash()
        .expect("the backup service has an environment map")
        .clone();
    environment
        .iter()
        .filter_map(|(key, value)| {
            let key = key.as_str()?;
            let default = value
                .as_str()?
                .strip_prefix(&format!("${{{key}:-"))?
                .strip_suffix('}')?;
            Some((key.to_owned(), default.to_owned()))
        })
        .collect()
}

/// What `.env.example` and README's Configuration table may document: the app's keys and
/// the backup service's settings.
fn documentable() -> BTreeSet<String> {
    known()
        .into_iter()
        .chain(backup_settings().into_keys())
        .collect()
}

#[test]
fn docker_compose_parses_and_passes_only_known_keys_to_the_app() {
    let compose = &compose();
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
fn docker_compose_keeps_uploaded_pictures_on_a_named_volume() {
    let compose = &compose();
    let app = &compose["services"]["app"];
    let dir = app["environment"]["MEDIA_DIR"]
        .as_str()
        .expect("the app's MEDIA_DIR is set");
    let volumes: Vec<&str> = app["volumes"]
        .as_vec()
        .expect("the app mounts volumes")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let mounted = volumes
        .iter()
        .filter_map(|volume| volume.split_once(':'))
        .find(|(_, target)| *target == dir)
        .map(|(source, _)| source)
        .expect("a volume is mounted at MEDIA_DIR");
    assert!(
        compose["volumes"]
            .as_hash()
            .unwrap()
            .contains_key(&Yaml::from_str(mounted)),
        "{mounted} is a named volume, kept across restarts and rebuilds"
    );
    // The image creates it for its user, so a new volume is writable.
    let dockerfile = repo_file("Dockerfile");
    assert!(dockerfile.contains(&format!("chown botshop:botshop /app/data {dir}")));
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
            && key
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            assert!(
                documentable().contains(key),
                ".env.example lists {key}, which neither the app nor the backup service reads"
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
                documentable().contains(key),
                "README.md's Configuration table lists {key}, which neither the app nor the \
                 backup service reads"
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

#[test]
fn docker_compose_backup_service_dumps_the_apps_database_with_the_documented_settings() {
    let compose = &compose();
    let services = &compose["services"];
    let backup = &services["backup"];
    assert!(
        !backup.is_badvalue(),
        "docker-compose.yml has a backup service"
    );
    assert_eq!(
        backup["image"], services["postgres"]["image"],
        "pg_dump matches the server's version"
    );
    assert_eq!(
        backup["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy")
    );
    // It runs deploy/backup.sh, mounted from the repository, into the backups volume.
    let volumes: Vec<&str> = backup["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let script = volumes
        .iter()
        .find_map(|volume| volume.strip_prefix("./deploy/backup.sh:"))
        .expect("the backup script is mounted");
    let script = script.trim_end_matches(":ro");
    let entrypoint: Vec<&str> = backup["entrypoint"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(entrypoint.contains(&script), "{entrypoint:?} runs {script}");
    assert!(repo_file("deploy/backup.sh").contains("pg_dump"));
    let environment = &backup["environment"];
    let dir = environment["BACKUP_DIR"].as_str().unwrap();
    assert!(
        volumes.contains(&format!("backups:{dir}").as_str()),
        "{volumes:?}"
    );
    assert!(
        compose["volumes"]
            .as_hash()
            .unwrap()
            .contains_key(&Yaml::from_str("backups"))
    );
    // The same database as the app, as the postgres service defines it.
    let postgres = &services["postgres"]["environment"];
    assert_eq!(environment["PGHOST"].as_str(), Some("postgres"));
    assert_eq!(environment["PGUSER"], postgres["POSTGRES_USER"]);
    assert_eq!(environment["PGPASSWORD"], postgres["POSTGRES_PASSWORD"]);
    assert_eq!(environment["PGDATABASE"], postgres["POSTGRES_DB"]);

    // Its settings are documented with the same defaults in README and .env.example.
    let settings = backup_settings();
    assert_eq!(
        settings.keys().collect::<Vec<_>>(),
        ["BACKUP_INTERVAL", "BACKUP_KEEP"]
    );
    let readme = repo_file("README.md");
    let configuration = readme
        .split("\n## Configuration\n")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    let example = repo_file(".env.example");
    let script = repo_file("deploy/backup.sh");
    for (key, default) in &settings {
        assert!(
            script.contains(&format!("{key}=\"${{{key}:-{default}}}\"")),
            "deploy/backup.sh defaults {key} to {default} too"
        );
        let row = configuration
            .lines()
            .find(|line| line.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("README.md's Configuration table lacks {key}"));
        assert!(
            row.contains(&format!("| `{default}` |")),
            "README.md gives {key} another default than compose's {default}: {row}"
        );
        assert!(
            example
                .lines()
                .any(|line| line == format!("{key}={default}")),
            ".env.example lacks {key}={default}"
        );
    }
}
