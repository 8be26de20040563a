//! The demo estate, built into the binary so that `lastseen run` works anywhere without a
//! config: the files of `fixtures/demo`, read through the same readers as files on disk.

use std::path::Path;

use crate::config::{Config, ConfigError};
use crate::inputs::{InputPlan, Source};

macro_rules! embed {
    ($path:literal) => {
        Source::Embedded {
            name: concat!("fixtures/demo/", $path),
            bytes: include_bytes!(concat!("../fixtures/demo/", $path)),
        }
    };
}

const CONFIG: &str = include_str!("../fixtures/demo/lastseen.toml");

/// Central pages, manifests and the tenant list.
const CENTRAL: &[Source] = &[
    embed!("central/5b1f0c3e-8a2d-4e6f-9c71-2d4b6a8e0f13/manifest.json"),
    embed!("central/5b1f0c3e-8a2d-4e6f-9c71-2d4b6a8e0f13/page-00001.json"),
    embed!("central/9e3c7a15-4b2f-4d8e-a6c0-1f5e9b3d7a22/manifest.json"),
    embed!("central/9e3c7a15-4b2f-4d8e-a6c0-1f5e9b3d7a22/page-00001.json"),
    embed!("central/d2a7e1b4-3c55-4f0e-9a61-0b8c2e7f4a10/manifest.json"),
    embed!("central/d2a7e1b4-3c55-4f0e-9a61-0b8c2e7f4a10/page-00001.json"),
    embed!("central/d2a7e1b4-3c55-4f0e-9a61-0b8c2e7f4a10/page-00002.json"),
    embed!("central/tenants.json"),
];

const LDIF: &[Source] = &[embed!("ad/corp.ldif"), embed!("ad/lab.ldif")];

const ACTIONS: Source = embed!("actions.jsonl");

/// The demo's config, as if read from `fixtures/demo/lastseen.toml`.
pub fn config() -> Result<Config, ConfigError> {
    let name = Path::new("fixtures/demo/lastseen.toml");
    Config::parse(CONFIG, name, Path::new("fixtures/demo"))
}

/// The demo's inputs, from the copies built into the binary.
pub fn inputs() -> InputPlan {
    InputPlan {
        central: CENTRAL.to_vec(),
        ldif: LDIF.to_vec(),
        actions: Some(ACTIONS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in copy must be the whole of fixtures/demo, or the demo and the fixture tests
    /// would quietly diverge.
    #[test]
    fn every_fixture_file_is_embedded() {
        fn walk(dir: &Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, found);
                } else {
                    found.push(path.to_string_lossy().into_owned());
                }
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut on_disk = Vec::new();
        walk(&root.join("fixtures/demo"), &mut on_disk);
        let mut on_disk: Vec<String> = on_disk
            .into_iter()
            .map(|path| {
                path.trim_start_matches(&format!("{}/", root.display()))
                    .to_owned()
            })
            .filter(|path| !path.ends_with("lastseen.toml"))
            .collect();
        on_disk.sort();

        let plan = inputs();
        let mut embedded: Vec<String> = plan
            .central
            .iter()
            .chain(&plan.ldif)
            .chain(plan.actions.as_ref())
            .map(Source::name)
            .collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }
}
