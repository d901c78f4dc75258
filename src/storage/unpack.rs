//! Archives unpacked with guards.
//!
//! KServe's storage initializer hands a downloaded `.tar`, `.tar.gz`, `.tgz` or `.zip` to
//! Python's `extractall`, inside a throwaway pod. gantry unpacks on the host, into a cache that
//! outlives every replica, from URLs that someone else may control; so nothing in an archive
//! is trusted:
//!
//! - every entry must name a path below the destination: no `..` component, no absolute path;
//! - only regular files and folders are written: links of either kind are refused outright
//!   (a link is the usual way to make a later entry write outside the destination, and a model
//!   never needs one), and so are devices, FIFOs and sockets;
//! - the bytes actually written are counted against a bound as they are written, because the
//!   sizes an archive declares (zip headers, tar sparse maps) can lie;
//! - tar metadata that the `tar` crate holds in memory (GNU long names, PAX headers) is bounded
//!   too, so a crafted header cannot exhaust memory before the first byte is written.
//!
//! On an error the destination holds part of the archive: callers unpack into a temporary
//! folder and discard it.

use std::cell::Cell;
use std::ffi::OsStr;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use flate2::read::MultiGzDecoder;

/// The most a tar archive may feed the `tar` crate between two entries (its header, GNU long
/// name and link name, PAX extensions, padding). The crate reads these into memory; real
/// archives use a few kilobytes, so this bound only stops crafted ones.
pub const MAX_TAR_HEADER_BYTES: u64 = 4 << 20;

/// Bytes read from an archive per write; the size bound can be overshot by at most this much
/// while reading, never while writing.
const COPY_BUFFER_BYTES: usize = 64 * 1024;

/// An archive's format, as KServe tells it from the file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Tar,
    TarGz,
    Zip,
    /// One gzip-compressed file, not an archive of several.
    Gz,
}

/// Why an archive was not (wholly) unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The archive file itself cannot be opened.
    #[error("cannot open archive {}: {source}", .path.display())]
    Open {
        /// The archive as given.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// Reading the archive failed for a reason other than its content (a disk error).
    #[error("cannot read archive {}: {source}", .path.display())]
    Read {
        /// The archive as given.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The file is not an archive of the kind its name says, or it is damaged or truncated.
    /// The text is KServe's; the cause is kept as the error's source.
    #[error("Failed to unpack archive file. The file format is not valid.")]
    InvalidFormat {
        /// What the archive reader found wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An entry would climb out of the destination.
    #[error(
        "archive entry `{entry}` has a `..` component: entries must stay inside the model folder"
    )]
    ParentDir {
        /// The entry's name as stored in the archive.
        entry: String,
    },
    /// An entry names an absolute path.
    #[error(
        "archive entry `{entry}` is an absolute path: entries must be relative to the model folder"
    )]
    AbsolutePath {
        /// The entry's name as stored in the archive.
        entry: String,
    },
    /// An entry's name is not usable as a path below the destination (empty, a NUL byte, a
    /// separator the zip reader refuses).
    #[error("archive entry `{entry}` does not name a path inside the model folder")]
    UnsafeName {
        /// The entry's name as stored in the archive.
        entry: String,
    },
    /// A symbolic or hard link.
    #[error("archive entry `{entry}` is a {kind}: links are not allowed in model archives")]
    Link {
        /// The entry's name as stored in the archive.
        entry: String,
        /// `symbolic link` or `hard link`.
        kind: &'static str,
    },
    /// A device, FIFO, socket, or a tar entry type gantry does not know.
    #[error(
        "archive entry `{entry}` is a {kind}: only regular files and folders are allowed in model archives"
    )]
    SpecialFile {
        /// The entry's name as stored in the archive.
        entry: String,
        /// What it is: `character device`, `FIFO`, `tar entry of type 'V'`, ...
        kind: String,
    },
    /// The archive unpacks to more than the bound.
    #[error(
        "archive unpacks to more than {max_bytes} bytes (storage max-unpacked-size); stopped in entry `{entry}`"
    )]
    TooLarge {
        /// The entry being written when the bound was reached.
        entry: String,
        /// The bound.
        max_bytes: u64,
    },
    /// A tar header, with its long names and PAX extensions, is larger than
    /// [`MAX_TAR_HEADER_BYTES`].
    #[error(
        "a tar header (with its long names and PAX extensions) is larger than {limit} bytes; real archives use a few kilobytes"
    )]
    HeaderTooLarge {
        /// The bound.
        limit: u64,
    },
    /// Writing into the destination failed (disk full, permissions, an entry that is a file
    /// in one place and a folder in another).
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file or folder being written.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
}

/// Tells the archive kind from a file name the way KServe does, with Python's
/// `mimetypes.guess_type`: `.tgz` stands for `.tar.gz`, and a name made only of its
/// extension (`.tar`, `.gz`) has none, as in `os.path.splitext`.
pub fn archive_kind(file_name: &str) -> Option<ArchiveKind> {
    let name = file_name
        .rsplit('/')
        .next()
        .unwrap_or(file_name)
        .to_ascii_lowercase();
    let (stem, extension) = split_extension(&name)?;
    match extension {
        "tar" => Some(ArchiveKind::Tar),
        "tgz" => Some(ArchiveKind::TarGz),
        "zip" => Some(ArchiveKind::Zip),
        "gz" => match split_extension(stem) {
            Some((_, "tar")) => Some(ArchiveKind::TarGz),
            _ => Some(ArchiveKind::Gz),
        },
        _ => None,
    }
}

/// `os.path.splitext` on a name: the extension starts at the last dot, unless only dots
/// come before it.
fn split_extension(name: &str) -> Option<(&str, &str)> {
    let dot = name.rfind('.')?;
    let stem = &name[..dot];
    if stem.chars().all(|c| c == '.') {
        return None;
    }
    Some((stem, &name[dot + 1..]))
}

/// Unpacks `archive` into the existing empty folder `dest` and returns the bytes written.
/// Blocking: async callers run it with `spawn_blocking`. For [`ArchiveKind::Gz`] the one file
/// is named as the archive without `.gz`, as KServe names it.
pub fn unpack(
    archive: &Path,
    kind: ArchiveKind,
    dest: &Path,
    max_bytes: u64,
) -> Result<u64, UnpackError> {
    let open = || {
        File::open(archive).map_err(|source| UnpackError::Open {
            path: archive.to_path_buf(),
            source,
        })
    };
    let mut budget = Budget::new(max_bytes, archive);
    match kind {
        ArchiveKind::Tar => unpack_tar(BufReader::new(open()?), dest, &mut budget)?,
        ArchiveKind::TarGz => unpack_tar(
            MultiGzDecoder::new(BufReader::new(open()?)),
            dest,
            &mut budget,
        )?,
        ArchiveKind::Zip => unpack_zip(open()?, dest, &mut budget)?,
        ArchiveKind::Gz => {
            let name = gz_output_name(archive)?;
            let shown = name.to_string_lossy();
            let relative = relative_path(&shown, Path::new(name))?;
            let mut decoder = MultiGzDecoder::new(BufReader::new(open()?));
            let target = dest.join(relative);
            let mut file = create_file(&target, false)?;
            budget.copy(&mut decoder, &mut file, &shown, &target)?;
        }
    }
    Ok(budget.written)
}

/// The archive's name less its `.gz`, as KServe names the one file. Still checked as an
/// entry name: `Path::file_stem` of `...gz` is `..`.
fn gz_output_name(archive: &Path) -> Result<&OsStr, UnpackError> {
    let has_gz = archive
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("gz"));
    let name = if has_gz {
        archive.file_stem()
    } else {
        archive.file_name()
    };
    name.ok_or_else(|| UnpackError::UnsafeName {
        entry: archive.display().to_string(),
    })
}

/// The bytes written so far against the bound, shared by every entry of one archive.
struct Budget<'a> {
    written: u64,
    max_bytes: u64,
    archive: &'a Path,
    buffer: Vec<u8>,
}

impl<'a> Budget<'a> {
    fn new(max_bytes: u64, archive: &'a Path) -> Self {
        Budget {
            written: 0,
            max_bytes,
            archive,
            buffer: vec![0; COPY_BUFFER_BYTES],
        }
    }

    /// Copies one entry, refusing a chunk that would cross the bound before writing any of
    /// it: what the entry declares is not trusted, only what comes out of the decompressor.
    fn copy(
        &mut self,
        from: &mut impl Read,
        to: &mut File,
        entry: &str,
        target: &Path,
    ) -> Result<(), UnpackError> {
        loop {
            let read = match from.read(&mut self.buffer) {
                Ok(0) => return Ok(()),
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(read_failure(error, self.archive)),
            };
            let written = self.written.saturating_add(read as u64);
            if written > self.max_bytes {
                return Err(UnpackError::TooLarge {
                    entry: entry.to_owned(),
                    max_bytes: self.max_bytes,
                });
            }
            to.write_all(&self.buffer[..read])
                .map_err(|source| UnpackError::Write {
                    path: target.to_path_buf(),
                    source,
                })?;
            self.written = written;
        }
    }
}

/// Tells a damaged archive (KServe's text) from a failing disk: decoders report bad content
/// as these kinds, and `tar` wraps its format errors as `Other`.
fn read_failure(error: io::Error, archive: &Path) -> UnpackError {
    match error.kind() {
        io::ErrorKind::InvalidData
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::Other => UnpackError::InvalidFormat {
            source: Box::new(error),
        },
        _ => UnpackError::Read {
            path: archive.to_path_buf(),
            source: error,
        },
    }
}

/// The entry's path below the destination. Checked component by component rather than by
/// normalising, so that `a/../../b` is refused, not silently turned into `b`.
fn relative_path(entry: &str, path: &Path) -> Result<PathBuf, UnpackError> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(UnpackError::ParentDir {
                    entry: entry.to_owned(),
                })
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(UnpackError::AbsolutePath {
                    entry: entry.to_owned(),
                })
            }
        }
    }
    if relative.as_os_str().is_empty() {
        return Err(UnpackError::UnsafeName {
            entry: entry.to_owned(),
        });
    }
    Ok(relative)
}

/// Where an entry goes, or `None` for a folder entry naming the destination itself (`./`, as
/// `tar -C dir .` writes it), which already exists.
fn entry_relative_path(
    entry: &str,
    path: &Path,
    action: &EntryAction,
) -> Result<Option<PathBuf>, UnpackError> {
    match relative_path(entry, path) {
        Err(UnpackError::UnsafeName { .. }) if matches!(action, EntryAction::Dir) => Ok(None),
        other => other.map(Some),
    }
}

fn create_dir(path: &Path) -> Result<(), UnpackError> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o755);
    builder.create(path).map_err(|source| UnpackError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates a file (and its folders). Only the executable bit is kept from the archive: model
/// servers start scripts shipped with the model, while other mode bits (setuid, world
/// writable) have no business in a shared cache.
fn create_file(path: &Path, executable: bool) -> Result<File, UnpackError> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if executable { 0o755 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = executable;
    options.open(path).map_err(|source| UnpackError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// What an entry becomes, decided before anything is written.
enum EntryAction {
    File { executable: bool },
    Dir,
    Skip,
}

fn tar_action(entry: &str, header: &tar::Header) -> Result<EntryAction, UnpackError> {
    use tar::EntryType;
    let special = |kind: &str| UnpackError::SpecialFile {
        entry: entry.to_owned(),
        kind: kind.to_owned(),
    };
    match header.entry_type() {
        // Old (pre-POSIX) archives mark a folder only by the trailing `/`; Python's `tarfile`
        // reads it the same way.
        EntryType::Regular if entry.ends_with('/') => Ok(EntryAction::Dir),
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            Ok(EntryAction::File {
                executable: header.mode().is_ok_and(|mode| mode & 0o111 != 0),
            })
        }
        EntryType::Directory => Ok(EntryAction::Dir),
        EntryType::Symlink => Err(UnpackError::Link {
            entry: entry.to_owned(),
            kind: "symbolic link",
        }),
        EntryType::Link => Err(UnpackError::Link {
            entry: entry.to_owned(),
            kind: "hard link",
        }),
        EntryType::Char => Err(special("character device")),
        EntryType::Block => Err(special("block device")),
        EntryType::Fifo => Err(special("FIFO")),
        // Metadata for the whole archive (a PAX global header), not a file.
        EntryType::XGlobalHeader => Ok(EntryAction::Skip),
        other => Err(special(&format!(
            "tar entry of type '{}'",
            other.as_byte().escape_ascii()
        ))),
    }
}

/// Counts the bytes the `tar` crate reads and, while armed, fails a read past a ceiling: the
/// crate reads long names and PAX headers whole into memory while it looks for the next
/// entry, before the caller sees anything.
#[derive(Default)]
struct TarMeter {
    consumed: Cell<u64>,
    ceiling: Cell<Option<u64>>,
    tripped: Cell<bool>,
}

struct MeteredReader<R> {
    inner: R,
    meter: Rc<TarMeter>,
}

impl<R: Read> Read for MeteredReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let consumed = self.meter.consumed.get();
        let mut limit = buf.len();
        if let Some(ceiling) = self.meter.ceiling.get() {
            let left = ceiling.saturating_sub(consumed);
            if left == 0 && !buf.is_empty() {
                self.meter.tripped.set(true);
                return Err(io::Error::other("tar header larger than the bound"));
            }
            limit = limit.min(usize::try_from(left).unwrap_or(usize::MAX));
        }
        let read = self.inner.read(&mut buf[..limit])?;
        self.meter.consumed.set(consumed + read as u64);
        Ok(read)
    }
}

fn unpack_tar(stream: impl Read, dest: &Path, budget: &mut Budget<'_>) -> Result<(), UnpackError> {
    let meter = Rc::new(TarMeter::default());
    let mut archive = tar::Archive::new(MeteredReader {
        inner: stream,
        meter: Rc::clone(&meter),
    });
    let archive_path = budget.archive;
    let mut entries = archive
        .entries()
        .map_err(|error| read_failure(error, archive_path))?;
    // Data of the previous entry that was not read (a folder's, a global header's): the
    // crate skips it while looking for the next header, so it must fit under the ceiling.
    let mut unread: u64 = 0;
    let mut count: u64 = 0;
    loop {
        meter.ceiling.set(Some(
            meter
                .consumed
                .get()
                .saturating_add(unread)
                .saturating_add(MAX_TAR_HEADER_BYTES),
        ));
        let next = entries.next();
        meter.ceiling.set(None);
        let mut entry = match next {
            None => break,
            Some(Ok(entry)) => entry,
            Some(Err(_)) if meter.tripped.get() => {
                return Err(UnpackError::HeaderTooLarge {
                    limit: MAX_TAR_HEADER_BYTES,
                })
            }
            Some(Err(error)) => return Err(read_failure(error, archive_path)),
        };
        count += 1;
        unread = entry.size();
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let action = tar_action(&name, entry.header())?;
        if matches!(action, EntryAction::Skip) {
            continue;
        }
        let path = entry
            .path()
            .map_err(|_| UnpackError::UnsafeName {
                entry: name.clone(),
            })?
            .into_owned();
        let Some(relative) = entry_relative_path(&name, &path, &action)? else {
            continue;
        };
        let target = dest.join(relative);
        match action {
            EntryAction::Dir => create_dir(&target)?,
            EntryAction::File { executable } => {
                let mut file = create_file(&target, executable)?;
                budget.copy(&mut entry, &mut file, &name, &target)?;
                unread = 0;
            }
            EntryAction::Skip => {}
        }
    }
    // Python's `tarfile` refuses an archive without a single member ("empty file"), and so
    // KServe reports it as invalid; a model archive with nothing in it is a mistake anyway.
    if count == 0 {
        return Err(UnpackError::InvalidFormat {
            source: "the tar archive holds no entries".into(),
        });
    }
    Ok(())
}

/// What a zip entry is, from the Unix file type when the archive records one.
fn zip_action(
    entry: &str,
    mode: Option<u32>,
    named_as_dir: bool,
) -> Result<EntryAction, UnpackError> {
    const S_IFMT: u32 = 0o170_000;
    let special = |kind: &str| UnpackError::SpecialFile {
        entry: entry.to_owned(),
        kind: kind.to_owned(),
    };
    match mode.map(|mode| mode & S_IFMT) {
        Some(0o120_000) => Err(UnpackError::Link {
            entry: entry.to_owned(),
            kind: "symbolic link",
        }),
        Some(0o020_000) => Err(special("character device")),
        Some(0o060_000) => Err(special("block device")),
        Some(0o010_000) => Err(special("FIFO")),
        Some(0o140_000) => Err(special("socket")),
        Some(0o040_000) => Ok(EntryAction::Dir),
        _ if named_as_dir => Ok(EntryAction::Dir),
        _ => Ok(EntryAction::File {
            executable: mode.is_some_and(|mode| mode & 0o111 != 0),
        }),
    }
}

fn unpack_zip(file: File, dest: &Path, budget: &mut Budget<'_>) -> Result<(), UnpackError> {
    let archive_path = budget.archive;
    let zip_failure = |error: zip::result::ZipError| match error {
        zip::result::ZipError::Io(error) => read_failure(error, archive_path),
        other => UnpackError::InvalidFormat {
            source: Box::new(other),
        },
    };
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(zip_failure)?;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(zip_failure)?;
        let name = entry.name().map_err(zip_failure)?.into_owned();
        let action = zip_action(&name, entry.unix_mode(), entry.is_dir())?;
        // Windows tools write `\` as a separator; checking with it as one gives `..\evil` the
        // precise error instead of a generic one.
        let checked = name.replace('\\', "/");
        if entry_relative_path(&name, Path::new(&checked), &action)?.is_none() {
            continue;
        }
        // The zip crate's own check, which is what the path comes from: it also refuses NUL
        // bytes and components it cannot split the way the file system will.
        let enclosed = entry
            .enclosed_name()
            .filter(|path| !path.as_os_str().is_empty())
            .ok_or_else(|| UnpackError::UnsafeName {
                entry: name.clone(),
            })?;
        let target = dest.join(enclosed);
        match action {
            EntryAction::Dir => create_dir(&target)?,
            EntryAction::File { executable } => {
                let mut file = create_file(&target, executable)?;
                budget.copy(&mut entry, &mut file, &name, &target)?;
            }
            EntryAction::Skip => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::fs;
    use std::io::Cursor;

    use flate2::write::GzEncoder;
    use flate2::Compression;
    use zip::write::SimpleFileOptions;

    const KSERVE_TEXT: &str = "Failed to unpack archive file. The file format is not valid.";

    /// A temporary root holding the destination folder and the archives, so that a write
    /// outside the destination shows up as an unexpected name in the root.
    struct Scene {
        root: tempfile::TempDir,
        dest: PathBuf,
    }

    impl Scene {
        fn new() -> Self {
            let root = tempfile::tempdir().unwrap();
            let dest = root.path().join("dest");
            fs::create_dir(&dest).unwrap();
            Scene { root, dest }
        }

        fn archive(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let path = self.root.path().join(name);
            fs::write(&path, bytes).unwrap();
            path
        }

        fn unpack(&self, archive: &Path, kind: ArchiveKind, max: u64) -> Result<u64, UnpackError> {
            unpack(archive, kind, &self.dest, max)
        }

        /// Everything in the root besides the destination and the archive.
        fn outside(&self, archive: &Path) -> BTreeSet<String> {
            fs::read_dir(self.root.path())
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .filter(|path| path != &self.dest && path != archive)
                .map(|path| path.display().to_string())
                .collect()
        }

        /// Files and folders under the destination, relative, folders ending in `/`.
        fn listing(&self) -> BTreeSet<String> {
            let mut found = BTreeSet::new();
            let mut pending = vec![self.dest.clone()];
            while let Some(dir) = pending.pop() {
                for entry in fs::read_dir(&dir).unwrap() {
                    let path = entry.unwrap().path();
                    let relative = path.strip_prefix(&self.dest).unwrap().display().to_string();
                    let kind = fs::symlink_metadata(&path).unwrap().file_type();
                    if kind.is_dir() {
                        found.insert(format!("{relative}/"));
                        pending.push(path);
                    } else {
                        assert!(kind.is_file(), "{relative} is neither a file nor a folder");
                        found.insert(relative);
                    }
                }
            }
            found
        }

        fn bytes_on_disk(&self) -> u64 {
            let mut total = 0;
            let mut pending = vec![self.dest.clone()];
            while let Some(dir) = pending.pop() {
                for entry in fs::read_dir(&dir).unwrap() {
                    let entry = entry.unwrap();
                    let metadata = entry.metadata().unwrap();
                    if metadata.is_dir() {
                        pending.push(entry.path());
                    } else {
                        total += metadata.len();
                    }
                }
            }
            total
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    const WEIGHTS: &[u8] = b"0123456789abcdef";
    const CONFIG: &[u8] = b"{\"model\": \"resnet\"}\n";
    const SCRIPT: &[u8] = b"#!/bin/sh\nexec serve\n";

    fn expected_listing() -> BTreeSet<String> {
        [
            "config.json",
            "empty/",
            "bin/",
            "bin/start.sh",
            "model/",
            "model/1/",
            "model/1/weights.bin",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    }

    fn assert_sample_unpacked(scene: &Scene, written: u64) {
        assert_eq!(scene.listing(), expected_listing());
        let dest = &scene.dest;
        assert_eq!(fs::read(dest.join("model/1/weights.bin")).unwrap(), WEIGHTS);
        assert_eq!(fs::read(dest.join("config.json")).unwrap(), CONFIG);
        assert_eq!(fs::read(dest.join("bin/start.sh")).unwrap(), SCRIPT);
        assert_eq!(
            written,
            (WEIGHTS.len() + CONFIG.len() + SCRIPT.len()) as u64
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: &str| fs::metadata(dest.join(path)).unwrap().permissions().mode();
            assert_ne!(
                mode("bin/start.sh") & 0o100,
                0,
                "the executable bit is kept"
            );
            assert_eq!(mode("config.json") & 0o111, 0);
            assert_eq!(mode("model/1/weights.bin") & 0o111, 0);
        }
    }

    fn sample_tar() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |path: &str, mode: u32, kind: tar::EntryType, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append_data(&mut header, path, data).unwrap();
        };
        add("./", 0o755, tar::EntryType::Directory, b"");
        add("config.json", 0o644, tar::EntryType::Regular, CONFIG);
        add("empty/", 0o755, tar::EntryType::Directory, b"");
        // No folder entries for `model/` and `model/1/`: writers may leave them out.
        add(
            "model/1/weights.bin",
            0o600,
            tar::EntryType::Regular,
            WEIGHTS,
        );
        add("./bin/start.sh", 0o755, tar::EntryType::Regular, SCRIPT);
        builder.into_inner().unwrap()
    }

    /// One tar block written by hand, because `tar::Header::set_path` and `set_link_name`
    /// refuse the names these tests need.
    fn raw_entry(name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8]) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(data);
        bytes.resize(bytes.len().div_ceil(512) * 512, 0);
        bytes
    }

    fn raw_tar(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = entries.concat();
        bytes.extend_from_slice(&[0; 1024]);
        bytes
    }

    fn zip_archive(build: impl FnOnce(&mut zip::ZipWriter<Cursor<Vec<u8>>>)) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        build(&mut writer);
        writer.finish().unwrap().into_inner()
    }

    fn zip_file(writer: &mut zip::ZipWriter<Cursor<Vec<u8>>>, name: &str, data: &[u8]) {
        let options = SimpleFileOptions::default().unix_permissions(0o644);
        writer.start_file(name, options).unwrap();
        writer.write_all(data).unwrap();
    }

    #[test]
    fn archive_kind_reads_the_name_as_python_mimetypes_does() {
        use ArchiveKind::*;
        let table: &[(&str, Option<ArchiveKind>)] = &[
            ("model.tar", Some(Tar)),
            ("MODEL.TAR", Some(Tar)),
            ("model.tar.gz", Some(TarGz)),
            ("model.Tar.GZ", Some(TarGz)),
            ("model.tgz", Some(TarGz)),
            ("model.TGZ", Some(TarGz)),
            ("model.zip", Some(Zip)),
            ("Model.ZIP", Some(Zip)),
            ("weights.bin.gz", Some(Gz)),
            ("weights.gz", Some(Gz)),
            ("model.zip.gz", Some(Gz)),
            ("models/v1/model.tar.gz", Some(TarGz)),
            ("model.gz.tar", Some(Tar)),
            // `splitext` sees no extension in a name made of dots and one extension.
            (".tar", None),
            (".gz", None),
            (".tar.gz", Some(Gz)),
            ("model.tar.bz2", None),
            ("model.tar.xz", None),
            ("model.bin", None),
            ("model", None),
            ("tar", None),
            ("", None),
        ];
        for (name, kind) in table {
            assert_eq!(archive_kind(name), *kind, "{name}");
        }
    }

    #[test]
    fn tar_with_nested_folders_unpacks() {
        let scene = Scene::new();
        let archive = scene.archive("model.tar", &sample_tar());
        let written = scene.unpack(&archive, ArchiveKind::Tar, 1 << 20).unwrap();
        assert_sample_unpacked(&scene, written);
        assert!(scene.outside(&archive).is_empty());
    }

    #[test]
    fn tar_gz_with_nested_folders_unpacks() {
        let scene = Scene::new();
        let archive = scene.archive("model.tgz", &gzip(&sample_tar()));
        let written = scene.unpack(&archive, ArchiveKind::TarGz, 1 << 20).unwrap();
        assert_sample_unpacked(&scene, written);
    }

    #[test]
    fn zip_with_nested_folders_unpacks() {
        let bytes = zip_archive(|writer| {
            let dir = SimpleFileOptions::default();
            zip_file(writer, "config.json", CONFIG);
            writer.add_directory("empty/", dir).unwrap();
            writer.add_directory("model/", dir).unwrap();
            writer.add_directory("model/1/", dir).unwrap();
            zip_file(writer, "model/1/weights.bin", WEIGHTS);
            // No folder entry for `bin/`.
            let executable = SimpleFileOptions::default().unix_permissions(0o755);
            writer.start_file("bin/start.sh", executable).unwrap();
            writer.write_all(SCRIPT).unwrap();
        });
        let scene = Scene::new();
        let archive = scene.archive("model.zip", &bytes);
        let written = scene.unpack(&archive, ArchiveKind::Zip, 1 << 20).unwrap();
        assert_sample_unpacked(&scene, written);
        assert!(scene.outside(&archive).is_empty());
    }

    #[test]
    fn old_style_tar_folder_is_a_folder() {
        let scene = Scene::new();
        let bytes = raw_tar(&[
            raw_entry(b"model/", tar::EntryType::Regular, b"", b""),
            raw_entry(b"model/weights.bin", tar::EntryType::Regular, b"", WEIGHTS),
        ]);
        let archive = scene.archive("model.tar", &bytes);
        assert_eq!(
            scene.unpack(&archive, ArchiveKind::Tar, 1 << 20).unwrap(),
            16
        );
        let expected = BTreeSet::from(["model/".to_string(), "model/weights.bin".to_string()]);
        assert_eq!(scene.listing(), expected);
    }

    #[test]
    fn gz_is_one_file_named_as_the_archive_without_gz() {
        let scene = Scene::new();
        let archive = scene.archive("weights.bin.GZ", &gzip(WEIGHTS));
        let written = scene.unpack(&archive, ArchiveKind::Gz, 1 << 20).unwrap();
        assert_eq!(written, WEIGHTS.len() as u64);
        assert_eq!(scene.listing(), BTreeSet::from(["weights.bin".to_string()]));
        assert_eq!(fs::read(scene.dest.join("weights.bin")).unwrap(), WEIGHTS);
    }

    #[test]
    fn gz_of_concatenated_members_is_read_whole() {
        let scene = Scene::new();
        let mut bytes = gzip(b"first ");
        bytes.extend(gzip(b"second"));
        let archive = scene.archive("notes.txt.gz", &bytes);
        assert_eq!(
            scene.unpack(&archive, ArchiveKind::Gz, 1 << 20).unwrap(),
            12
        );
        assert_eq!(
            fs::read(scene.dest.join("notes.txt")).unwrap(),
            b"first second"
        );
    }

    #[test]
    fn gz_named_dot_dot_does_not_climb_out() {
        let scene = Scene::new();
        // `Path::file_stem` of `...gz` is `..`.
        let archive = scene.archive("...gz", &gzip(WEIGHTS));
        let error = scene
            .unpack(&archive, ArchiveKind::Gz, 1 << 20)
            .unwrap_err();
        assert!(matches!(error, UnpackError::ParentDir { .. }), "{error:?}");
        assert!(scene.outside(&archive).is_empty());
        assert!(scene.listing().is_empty());
    }

    #[test]
    fn tar_entry_with_dot_dot_is_refused_and_nothing_lands_outside() {
        for name in [&b"../evil"[..], b"model/../../evil", b"model/.."] {
            let scene = Scene::new();
            let bytes = raw_tar(&[raw_entry(name, tar::EntryType::Regular, b"", b"pwned")]);
            let archive = scene.archive("model.tar", &bytes);
            let error = scene
                .unpack(&archive, ArchiveKind::Tar, 1 << 20)
                .unwrap_err();
            let shown = String::from_utf8_lossy(name);
            assert!(
                matches!(&error, UnpackError::ParentDir { entry } if *entry == shown),
                "{error:?}"
            );
            assert!(error.to_string().contains(&*shown), "{error}");
            assert!(
                scene.outside(&archive).is_empty(),
                "{:?}",
                scene.outside(&archive)
            );
            assert!(scene.listing().is_empty());
        }
    }

    #[test]
    fn tar_absolute_path_is_refused() {
        let scene = Scene::new();
        let evil = scene.root.path().join("evil");
        let name = evil.to_str().unwrap().as_bytes();
        assert!(name.len() < 100, "the name must fit the old header");
        let bytes = raw_tar(&[raw_entry(name, tar::EntryType::Regular, b"", b"pwned")]);
        let archive = scene.archive("model.tar", &bytes);
        let error = scene
            .unpack(&archive, ArchiveKind::Tar, 1 << 20)
            .unwrap_err();
        assert!(
            matches!(error, UnpackError::AbsolutePath { .. }),
            "{error:?}"
        );
        assert!(!evil.exists());
        assert!(scene.outside(&archive).is_empty());
        assert!(scene.listing().is_empty());
    }

    #[test]
    fn zip_entry_with_dot_dot_is_refused_and_nothing_lands_outside() {
        for name in ["../evil", "model/../../evil", "..\\evil"] {
            let scene = Scene::new();
            let bytes = zip_archive(|writer| zip_file(writer, name, b"pwned"));
            let archive = scene.archive("model.zip", &bytes);
            let error = scene
                .unpack(&archive, ArchiveKind::Zip, 1 << 20)
                .unwrap_err();
            assert!(
                matches!(&error, UnpackError::ParentDir { entry } if entry == name),
                "{error:?}"
            );
            assert!(
                scene.outside(&archive).is_empty(),
                "{:?}",
                scene.outside(&archive)
            );
            assert!(scene.listing().is_empty());
        }
    }

    #[test]
    fn zip_absolute_path_is_refused() {
        let scene = Scene::new();
        let evil = scene.root.path().join("evil");
        let bytes = zip_archive(|writer| zip_file(writer, evil.to_str().unwrap(), b"pwned"));
        let archive = scene.archive("model.zip", &bytes);
        let error = scene
            .unpack(&archive, ArchiveKind::Zip, 1 << 20)
            .unwrap_err();
        assert!(
            matches!(error, UnpackError::AbsolutePath { .. }),
            "{error:?}"
        );
        assert!(!evil.exists());
        assert!(scene.listing().is_empty());
    }

    #[test]
    fn tar_symlink_is_refused_even_inside() {
        for target in [&b"../../outside"[..], b"weights.bin"] {
            let scene = Scene::new();
            let bytes = raw_tar(&[
                raw_entry(b"model/", tar::EntryType::Directory, b"", b""),
                raw_entry(b"model/link", tar::EntryType::Symlink, target, b""),
                raw_entry(b"model/link/escape", tar::EntryType::Regular, b"", b"pwned"),
            ]);
            let archive = scene.archive("model.tar", &bytes);
            let error = scene
                .unpack(&archive, ArchiveKind::Tar, 1 << 20)
                .unwrap_err();
            assert!(
                matches!(&error, UnpackError::Link { entry, kind: "symbolic link" } if entry == "model/link"),
                "{error:?}"
            );
            assert!(error
                .to_string()
                .ends_with("links are not allowed in model archives"));
            assert!(fs::symlink_metadata(scene.dest.join("model/link")).is_err());
            assert!(scene.outside(&archive).is_empty());
        }
    }

    #[test]
    fn tar_hardlink_is_refused() {
        let scene = Scene::new();
        let bytes = raw_tar(&[raw_entry(
            b"passwd",
            tar::EntryType::Link,
            b"/etc/passwd",
            b"",
        )]);
        let archive = scene.archive("model.tar", &bytes);
        let error = scene
            .unpack(&archive, ArchiveKind::Tar, 1 << 20)
            .unwrap_err();
        assert!(
            matches!(&error, UnpackError::Link { entry, kind: "hard link" } if entry == "passwd"),
            "{error:?}"
        );
        assert!(scene.listing().is_empty());
    }

    #[test]
    fn zip_symlink_is_refused() {
        let scene = Scene::new();
        let bytes = zip_archive(|writer| {
            let options = SimpleFileOptions::default();
            writer
                .add_symlink("link", "../../outside", options)
                .unwrap();
        });
        let archive = scene.archive("model.zip", &bytes);
        let error = scene
            .unpack(&archive, ArchiveKind::Zip, 1 << 20)
            .unwrap_err();
        assert!(
            matches!(&error, UnpackError::Link { entry, .. } if entry == "link"),
            "{error:?}"
        );
        assert!(scene.listing().is_empty());
    }

    #[test]
    fn tar_devices_and_fifos_are_refused() {
        for (kind, shown) in [
            (tar::EntryType::Fifo, "FIFO"),
            (tar::EntryType::Char, "character device"),
            (tar::EntryType::Block, "block device"),
            (tar::EntryType::new(b'V'), "tar entry of type 'V'"),
        ] {
            let scene = Scene::new();
            let bytes = raw_tar(&[raw_entry(b"dev", kind, b"", b"")]);
            let archive = scene.archive("model.tar", &bytes);
            let error = scene
                .unpack(&archive, ArchiveKind::Tar, 1 << 20)
                .unwrap_err();
            assert!(
                matches!(&error, UnpackError::SpecialFile { entry, kind } if entry == "dev" && kind == shown),
                "{error:?}"
            );
            assert!(scene.listing().is_empty());
        }
    }

    #[test]
    fn zip_fifo_is_refused() {
        let scene = Scene::new();
        let bytes = zip_archive(|writer| {
            // `unix_permissions` drops the file type bits; the Unix mode is the attributes' high
            // half.
            let options = SimpleFileOptions::default().external_attributes(0o010_644 << 16);
            writer.start_file("pipe", options).unwrap();
        });
        let archive = scene.archive("model.zip", &bytes);
        let error = scene
            .unpack(&archive, ArchiveKind::Zip, 1 << 20)
            .unwrap_err();
        assert!(
            matches!(error, UnpackError::SpecialFile { .. }),
            "{error:?}"
        );
        assert!(scene.listing().is_empty());
    }

    const BOMB_BYTES: usize = 10 << 20;
    const BOUND: u64 = 1 << 20;

    fn assert_stopped_at_bound(scene: &Scene, error: UnpackError, entry_name: &str) {
        assert!(
            matches!(&error, UnpackError::TooLarge { entry, max_bytes: BOUND } if entry == entry_name),
            "{error:?}"
        );
        let on_disk = scene.bytes_on_disk();
        assert!(
            on_disk <= BOUND + COPY_BUFFER_BYTES as u64,
            "{on_disk} bytes written past a bound of {BOUND}"
        );
        assert!(
            on_disk > BOUND / 2,
            "the bound is what stopped it: {on_disk}"
        );
    }

    #[test]
    fn gz_bomb_stops_at_the_bound() {
        let scene = Scene::new();
        let archive = scene.archive("zeros.bin.gz", &gzip(&vec![0; BOMB_BYTES]));
        assert!(fs::metadata(&archive).unwrap().len() < 100 << 10);
        let error = scene.unpack(&archive, ArchiveKind::Gz, BOUND).unwrap_err();
        assert_stopped_at_bound(&scene, error, "zeros.bin");
    }

    #[test]
    fn tar_gz_bomb_stops_at_the_bound() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(BOMB_BYTES as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "zeros.bin", &vec![0; BOMB_BYTES][..])
            .unwrap();
        let scene = Scene::new();
        let archive = scene.archive("bomb.tar.gz", &gzip(&builder.into_inner().unwrap()));
        let error = scene
            .unpack(&archive, ArchiveKind::TarGz, BOUND)
            .unwrap_err();
        assert_stopped_at_bound(&scene, error, "zeros.bin");
    }

    #[test]
    fn zip_bomb_stops_at_the_bound() {
        let bytes = zip_archive(|writer| zip_file(writer, "zeros.bin", &vec![0; BOMB_BYTES]));
        let scene = Scene::new();
        let archive = scene.archive("bomb.zip", &bytes);
        let error = scene.unpack(&archive, ArchiveKind::Zip, BOUND).unwrap_err();
        assert_stopped_at_bound(&scene, error, "zeros.bin");
    }

    #[test]
    fn the_bound_counts_every_entry_and_is_inclusive() {
        let mut builder = tar::Builder::new(Vec::new());
        for name in ["a.bin", "b.bin", "c.bin"] {
            let mut header = tar::Header::new_gnu();
            header.set_size(1000);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, &[7u8; 1000][..])
                .unwrap();
        }
        let bytes = builder.into_inner().unwrap();

        let scene = Scene::new();
        let archive = scene.archive("model.tar", &bytes);
        assert_eq!(
            scene.unpack(&archive, ArchiveKind::Tar, 3000).unwrap(),
            3000
        );

        let scene = Scene::new();
        let archive = scene.archive("model.tar", &bytes);
        let error = scene.unpack(&archive, ArchiveKind::Tar, 2999).unwrap_err();
        assert!(
            matches!(&error, UnpackError::TooLarge { entry, max_bytes: 2999 } if entry == "c.bin"),
            "{error:?}"
        );
        assert!(scene.bytes_on_disk() <= 2999);
    }

    /// A zip whose headers claim each entry is one byte: the bound holds on what comes out.
    #[test]
    fn zip_bomb_with_lying_sizes_stays_bounded() {
        let mut bytes = zip_archive(|writer| zip_file(writer, "zeros.bin", &vec![0; BOMB_BYTES]));
        let size = (BOMB_BYTES as u32).to_le_bytes();
        let mut patched = 0;
        for (signature, offset) in [(b"PK\x03\x04", 22), (b"PK\x01\x02", 24)] {
            let at = bytes
                .windows(4)
                .position(|window| window == signature)
                .unwrap();
            assert_eq!(bytes[at + offset..at + offset + 4], size);
            bytes[at + offset..at + offset + 4].copy_from_slice(&1u32.to_le_bytes());
            patched += 1;
        }
        assert_eq!(patched, 2);
        let scene = Scene::new();
        let archive = scene.archive("bomb.zip", &bytes);
        let result = scene.unpack(&archive, ArchiveKind::Zip, BOUND);
        assert!(
            matches!(
                result,
                Err(UnpackError::TooLarge { .. } | UnpackError::InvalidFormat { .. })
            ),
            "{result:?}"
        );
        assert!(scene.bytes_on_disk() <= BOUND + COPY_BUFFER_BYTES as u64);
    }

    #[test]
    fn tar_long_name_larger_than_the_header_bound_is_refused() {
        let long_name = vec![b'a'; (MAX_TAR_HEADER_BYTES + 4096) as usize];
        let bytes = raw_tar(&[
            raw_entry(
                b"././@LongLink",
                tar::EntryType::GNULongName,
                b"",
                &long_name,
            ),
            raw_entry(b"short", tar::EntryType::Regular, b"", b"data"),
        ]);
        let scene = Scene::new();
        let archive = scene.archive("model.tar", &bytes);
        let error = scene
            .unpack(&archive, ArchiveKind::Tar, u64::MAX)
            .unwrap_err();
        assert!(
            matches!(error, UnpackError::HeaderTooLarge { .. }),
            "{error:?}"
        );
        assert!(scene.listing().is_empty());
    }

    #[test]
    fn tar_long_names_within_the_bound_are_read() {
        let name = format!("model/{}/weights.bin", "d".repeat(200));
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(WEIGHTS.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, &name, WEIGHTS).unwrap();
        let scene = Scene::new();
        let archive = scene.archive("model.tar", &builder.into_inner().unwrap());
        assert_eq!(
            scene.unpack(&archive, ArchiveKind::Tar, 1 << 20).unwrap(),
            16
        );
        assert_eq!(fs::read(scene.dest.join(name)).unwrap(), WEIGHTS);
    }

    #[test]
    fn garbage_gets_kserves_text() {
        // Deterministic noise: a linear congruential generator.
        let mut state: u32 = 12345;
        let garbage: Vec<u8> = (0..4096)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (state >> 16) as u8
            })
            .collect();
        let cases: [(&str, &[u8], ArchiveKind); 6] = [
            ("model.tar", &garbage, ArchiveKind::Tar),
            ("model.tar.gz", &garbage, ArchiveKind::TarGz),
            ("model.zip", &garbage, ArchiveKind::Zip),
            ("model.bin.gz", &garbage, ArchiveKind::Gz),
            ("empty.tar", b"", ArchiveKind::Tar),
            ("short.tar", b"not a tar", ArchiveKind::Tar),
        ];
        for (name, bytes, kind) in cases {
            let scene = Scene::new();
            let archive = scene.archive(name, bytes);
            let error = scene.unpack(&archive, kind, 1 << 20).unwrap_err();
            assert!(
                matches!(error, UnpackError::InvalidFormat { .. }),
                "{name}: {error:?}"
            );
            assert_eq!(error.to_string(), KSERVE_TEXT, "{name}");
        }
    }

    #[test]
    fn truncated_tar_gz_gets_kserves_text() {
        let bytes = gzip(&sample_tar());
        let scene = Scene::new();
        let archive = scene.archive("model.tar.gz", &bytes[..bytes.len() / 2]);
        let error = scene
            .unpack(&archive, ArchiveKind::TarGz, 1 << 20)
            .unwrap_err();
        assert_eq!(error.to_string(), KSERVE_TEXT, "{error:?}");
    }

    #[test]
    fn a_missing_archive_is_an_open_error() {
        let scene = Scene::new();
        let missing = scene.root.path().join("missing.tar");
        let error = scene
            .unpack(&missing, ArchiveKind::Tar, 1 << 20)
            .unwrap_err();
        assert!(matches!(error, UnpackError::Open { .. }), "{error:?}");
    }
}
