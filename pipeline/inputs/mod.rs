//! Readers for the inputs of a run: Central endpoint pages, LDIF exports and the action log.
//!
//! Each reader turns its format into Arrow record batches whose schemas live in
//! [`schema`], and turns every record it cannot use into a [`Reject`]: the record is skipped,
//! counted and kept with its raw text, and the run goes on. Rejects are also a table, so the
//! correlation can refuse to `delete` where the data it saw was incomplete.

pub mod actions;
pub mod central;
pub mod dn;
pub mod ldif;
pub mod schema;
pub mod time;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{RecordBatch, StringBuilder};
use serde::Serialize;

/// Where the bytes of an input come from: a file on disk, a file built into the binary (the
/// demo estate), or memory.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Embedded {
        name: &'static str,
        bytes: &'static [u8],
    },
    /// Bytes assembled in memory, such as state rebuilt from a Kafka topic.
    Memory {
        name: String,
        bytes: Arc<[u8]>,
    },
}

impl Source {
    /// The name used in messages and rejects.
    pub fn name(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Embedded { name, .. } => (*name).to_owned(),
            Source::Memory { name, .. } => name.clone(),
        }
    }

    /// The whole content. Page files and action logs are small enough to read at once; LDIF
    /// exports are streamed instead (see [`ldif`]).
    pub fn read(&self) -> Result<Vec<u8>, InputError> {
        match self {
            Source::File(path) => std::fs::read(path).map_err(|source| InputError::Read {
                path: path.to_owned(),
                source,
            }),
            Source::Embedded { bytes, .. } => Ok(bytes.to_vec()),
            Source::Memory { bytes, .. } => Ok(bytes.to_vec()),
        }
    }

    /// The folder the source sits in, for page files that take their tenant from it.
    pub fn parent_name(&self) -> Option<String> {
        let name = match self {
            Source::File(path) => path.as_path(),
            Source::Embedded { name, .. } => Path::new(*name),
            Source::Memory { name, .. } => Path::new(name),
        };
        let parent = name.parent()?.file_name()?;
        Some(parent.to_string_lossy().into_owned())
    }
}

/// An input that cannot be read at all. Records that cannot be used are [`Reject`]s instead.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path}: no such file or directory")]
    Missing { path: PathBuf },
}

/// Which reader rejected a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Central,
    Manifest,
    Ldif,
    Actions,
}

impl InputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Central => "central",
            InputKind::Manifest => "manifest",
            InputKind::Ldif => "ldif",
            InputKind::Actions => "actions",
        }
    }
}

/// A record that was skipped, with enough to find it and to replay it once fixed.
#[derive(Debug, Clone, Serialize)]
pub struct Reject {
    pub input: InputKind,
    pub file: String,
    /// Where in the file: `item 17 of the page`, `line 42`, `entry at line 120`.
    pub record: String,
    /// The field at fault, as a path (`os.build`, `objectGUID`), when one is to blame.
    pub field: Option<String>,
    pub problem: String,
    /// The tenant the record belonged to, when it could still be read. A reject with no
    /// tenant makes the whole run incomplete; one with a tenant only that tenant.
    pub tenant_id: Option<String>,
    pub endpoint_id: Option<String>,
    /// The record as it was read, so it can be fixed and replayed.
    pub raw: Option<String>,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.record)?;
        if let Some(field) = &self.field {
            write!(f, ": field {field}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// Rejects as a table, so SQL can scope "incomplete input" to the tenants it touches.
pub fn rejects_batch(rejects: &[Reject]) -> RecordBatch {
    let mut input = StringBuilder::new();
    let mut file = StringBuilder::new();
    let mut record = StringBuilder::new();
    let mut field = StringBuilder::new();
    let mut problem = StringBuilder::new();
    let mut tenant_id = StringBuilder::new();
    let mut endpoint_id = StringBuilder::new();

    for reject in rejects {
        input.append_value(reject.input.as_str());
        file.append_value(&reject.file);
        record.append_value(&reject.record);
        field.append_option(reject.field.as_deref());
        problem.append_value(&reject.problem);
        tenant_id.append_option(reject.tenant_id.as_deref());
        endpoint_id.append_option(reject.endpoint_id.as_deref());
    }

    let columns: Vec<arrow::array::ArrayRef> = vec![
        Arc::new(input.finish()),
        Arc::new(file.finish()),
        Arc::new(record.finish()),
        Arc::new(field.finish()),
        Arc::new(problem.finish()),
        Arc::new(tenant_id.finish()),
        Arc::new(endpoint_id.finish()),
    ];
    RecordBatch::try_new(schema::rejects(), columns).expect("columns follow schema::rejects")
}

/// Which sources a run reads.
#[derive(Debug, Clone, Default)]
pub struct InputPlan {
    pub central: Vec<Source>,
    pub ldif: Vec<Source>,
    pub actions: Option<Source>,
}

impl InputPlan {
    /// The inputs a config names.
    pub fn from_config(config: &crate::config::Config) -> InputPlan {
        InputPlan {
            central: config
                .inputs
                .central
                .iter()
                .cloned()
                .map(Source::File)
                .collect(),
            ldif: config
                .inputs
                .ldif
                .iter()
                .cloned()
                .map(Source::File)
                .collect(),
            actions: config.inputs.actions.clone().map(Source::File),
        }
    }
}

/// Everything a run read, as tables, with every rejected record.
#[derive(Debug, Default)]
pub struct Estate {
    pub central: central::CentralInput,
    pub directory: ldif::DirectoryInput,
    pub actions: actions::ActionInput,
    /// The rejects of all three readers, in reading order.
    pub rejects: Vec<Reject>,
}

impl Estate {
    /// Reads every input of `plan`. A missing or unreadable input stops the run; a bad record
    /// only becomes a reject.
    pub fn load(plan: &InputPlan) -> Result<Estate, InputError> {
        // Both readers spread their files over the cores; running them side by side lets one
        // fill the cores the other leaves idle at the end of its files.
        let (central, directory) = rayon::join(
            || timed("central", || central::read(&plan.central)),
            || timed("ldif", || ldif::read(&plan.ldif)),
        );
        let mut estate = Estate {
            central: central?,
            directory: directory?,
            actions: match &plan.actions {
                Some(source) => actions::read(source)?,
                None => actions::ActionInput::default(),
            },
            rejects: Vec::new(),
        };

        estate
            .rejects
            .extend(estate.central.rejects.iter().cloned());
        estate
            .rejects
            .extend(estate.directory.rejects.iter().cloned());
        estate
            .rejects
            .extend(estate.actions.rejects.iter().cloned());
        Ok(estate)
    }
}

/// Runs one reader and logs how long it took, for profiling a slow run.
fn timed<T>(reader: &'static str, read: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let read = read();
    tracing::debug!(
        reader,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Read an input."
    );
    read
}
