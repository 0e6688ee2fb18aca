//! [`CSVLogger`], as `keras.callbacks.CSVLogger`.

use super::pyformat::repr;
use super::{Callback, LogValues, Training};
use crate::error::Error;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::io::Write;

/// Writes each epoch's logs to a CSV file (Keras 3's `CSVLogger`, byte for byte): a header
/// `epoch` then the logged names sorted (plus `val_` twins, written `NA`, when the first
/// epoch has no validation), one row per epoch with values as Python prints them, `\r\n`
/// line ends (Python's `csv` module), flushed after each row. With `append`, rows go after
/// the file's existing ones, and the header only into an empty file.
#[derive(Debug)]
pub struct CSVLogger {
    /// The file.
    pub filename: String,
    /// Between fields. Keras default `,`.
    pub separator: char,
    /// Add to an existing file rather than replace it. Keras default false.
    pub append: bool,
    /// The open file and its columns, between `on_train_begin` and `on_train_end`.
    pub file: CsvFile,
}

/// [`CSVLogger`]'s open file, its columns, and whether it needs a header.
#[derive(Debug)]
pub struct CsvFile {
    keys: Option<Vec<String>>,
    file: Option<std::fs::File>,
    append_header: bool,
    header_written: bool,
}

impl CSVLogger {
    /// A logger to `filename` with Keras's defaults.
    pub fn new(filename: impl Into<String>) -> Self {
        CSVLogger {
            filename: filename.into(),
            separator: ',',
            append: false,
            file: CsvFile {
                keys: None,
                file: None,
                append_header: true,
                header_written: false,
            },
        }
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::Io {
            path: self.filename.clone(),
            message: e.to_string(),
        }
    }
}

impl Callback for CSVLogger {
    fn on_train_begin(
        &mut self,
        _logs: &mut LogValues,
        _training: &mut Training<'_>,
    ) -> Result<(), Error> {
        let mut options = std::fs::OpenOptions::new();
        if self.append {
            if let Ok(text) = std::fs::read_to_string(&self.filename) {
                self.file.append_header = text.lines().next().is_none_or(str::is_empty);
            }
            options.append(true).create(true);
        } else {
            options.write(true).create(true).truncate(true);
        }
        self.file.file = Some(options.open(&self.filename).map_err(|e| self.io(e))?);
        self.file.keys = None;
        self.file.header_written = false;
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        epoch: usize,
        logs: &mut LogValues,
        _training: &mut Training<'_>,
    ) -> Result<(), Error> {
        let keys = self.file.keys.get_or_insert_with(|| {
            let mut keys: Vec<String> = Vec::new();
            for (name, _) in logs.iter() {
                if !keys.iter().any(|k| k == name) {
                    keys.push(name.into());
                }
            }
            keys.sort();
            if !keys.is_empty() && !keys.iter().any(|k| k.starts_with("val_")) {
                let twins: Vec<String> = keys.iter().map(|k| std::format!("val_{k}")).collect();
                keys.extend(twins);
            }
            keys
        });
        let sep = self.separator;
        let mut text = String::new();
        if !self.file.header_written {
            self.file.header_written = true;
            if self.file.append_header {
                text.push_str("epoch");
                for key in keys.iter() {
                    text.push(sep);
                    text.push_str(key);
                }
                text.push_str("\r\n");
            }
        }
        text.push_str(&epoch.to_string());
        for key in keys.iter() {
            text.push(sep);
            let values: Vec<f32> = logs
                .iter()
                .filter(|(n, _)| n == key)
                .map(|(_, v)| v)
                .collect();
            match values.as_slice() {
                [] => text.push_str("NA"),
                [v] => text.push_str(&repr(f64::from(*v))),
                many => {
                    // A vector-valued metric: Keras writes the array quoted, `"[a, b]"`.
                    let items: Vec<String> = many.iter().map(|v| repr(f64::from(*v))).collect();
                    text.push_str(&std::format!("\"[{}]\"", items.join(", ")));
                }
            }
        }
        text.push_str("\r\n");
        let result = match &mut self.file.file {
            Some(file) => file.write_all(text.as_bytes()).and_then(|()| file.flush()),
            None => Ok(()),
        };
        result.map_err(|e| self.io(e))
    }

    fn on_train_end(
        &mut self,
        _logs: &mut LogValues,
        _training: &mut Training<'_>,
    ) -> Result<(), Error> {
        self.file.file = None;
        Ok(())
    }
}
