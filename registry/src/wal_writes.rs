//! A SQLite VFS, used by the writer's direct connection only, that hands a commit's
//! write-ahead-log frames to the kernel in a few large writes.
//!
//! SQLite writes each frame of the log as two `pwrite`s (its 24-byte header, then the page), so a
//! commit of a 10,000-reading stream batch (about 1.4 MB) makes ~700 system calls before its
//! `fsync`; on this kind of virtual machine they cost three times the `fsync` itself (measured:
//! 704 such writes and a sync 11.0 ms, one write of the same bytes and a sync 2.9 ms). This VFS is
//! the default one but for the log: contiguous writes to it are held in memory and written in a
//! few large pieces when SQLite syncs, reads, truncates or asks the log's size, or when they stop
//! being contiguous, so every byte reaches the file before anything could depend on it.
//!
//! That holds because of two settings of the connection, which [`crate::db`] sets and checks:
//! - `synchronous = FULL`: every commit ends with a sync of the log, before the wal-index tells
//!   readers about its frames. (With `NORMAL` the index would name frames still held here.)
//! - `cache_spill = OFF`: frames are written only by commits. (A transaction that spilled pages
//!   to the log and then rolled back would leave frames held here, to be written later over
//!   another connection's commit.)
//!
//! A file system without power-safe overwrite makes SQLite pad and sync commits mid-write; the
//! log is then written through unchanged.

use std::ffi::{CStr, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, Ordering};

use rusqlite::ffi;

/// The VFS's name, for `sqlite3_open_v2`.
pub(crate) const NAME: &str = "refit-wal-writes";
const NAME_C: &CStr = c"refit-wal-writes";

/// Most bytes held before they are written anyway.
const MAX_HELD: usize = 16 << 20;
/// Most bytes per write: the default VFS writes at most 0x1ffff bytes at a time (it masks the
/// length with that), so held bytes go in pieces of 31 pages of 4 KiB.
const MAX_WRITE: usize = 31 * 4096;

/// The VFS this one wraps (SQLite's default).
static REAL: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(ptr::null_mut());

/// Registers the VFS (once); the error says why it could not be.
pub(crate) fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // Safety: SQLite's VFS functions are thread-safe; the registered struct is leaked, so
            // it outlives every connection.
            unsafe {
                let real = ffi::sqlite3_vfs_find(ptr::null());
                if real.is_null() {
                    return Err("SQLite has no default VFS".into());
                }
                REAL.store(real, Ordering::Release);
                let mut vfs = *real;
                vfs.szOsFile = (std::mem::size_of::<LogFile>() as c_int) + (*real).szOsFile;
                vfs.zName = NAME_C.as_ptr();
                vfs.pNext = ptr::null_mut();
                vfs.xOpen = Some(open);
                let rc = ffi::sqlite3_vfs_register(Box::leak(Box::new(vfs)), 0);
                if rc != ffi::SQLITE_OK {
                    return Err(format!("registering the SQLite VFS failed (code {rc})"));
                }
            }
            Ok(())
        })
        .clone()
}

/// An open write-ahead log: SQLite's handle first (its `pMethods` are [`METHODS`]), then what
/// is held; the default VFS's own handle follows in the same allocation.
#[repr(C)]
struct LogFile {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    held: Vec<u8>,
    /// Where `held` goes in the file.
    held_at: i64,
}

/// The default VFS's handle behind `file`.
unsafe fn real_of(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    unsafe { (*(file as *mut LogFile)).real }
}

/// The default VFS's methods for `file`.
unsafe fn methods(file: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    unsafe { &*(*real_of(file)).pMethods }
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    unsafe {
        let real_vfs = REAL.load(Ordering::Acquire);
        let real_open = (*real_vfs).xOpen.expect("a VFS opens files");
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            // Any other file is the default VFS's own, in the same memory.
            return real_open(real_vfs, name, file, flags, out_flags);
        }
        let real = (file as *mut u8).add(std::mem::size_of::<LogFile>()) as *mut ffi::sqlite3_file;
        let rc = real_open(real_vfs, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let powersafe = (*(*real).pMethods)
            .xDeviceCharacteristics
            .is_some_and(|f| f(real) & ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE != 0);
        ptr::write(
            file as *mut LogFile,
            LogFile {
                base: ffi::sqlite3_file {
                    pMethods: if powersafe { &METHODS } else { &THROUGH },
                },
                real,
                held: Vec::new(),
                held_at: 0,
            },
        );
        ffi::SQLITE_OK
    }
}

/// Writes what is held. On failure the bytes are dropped: SQLite sees the error (the commit
/// fails) and will write those frames again if it still wants them.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let log = &mut *(file as *mut LogFile);
        if log.held.is_empty() {
            return ffi::SQLITE_OK;
        }
        let write = methods(file).xWrite.expect("a file writes");
        let mut rc = ffi::SQLITE_OK;
        let mut at = log.held_at;
        for chunk in log.held.chunks(MAX_WRITE) {
            #[cfg(test)]
            tests::WRITES.with(|w| w.set(w.get() + 1));
            rc = write(
                log.real,
                chunk.as_ptr() as *const c_void,
                chunk.len() as c_int,
                at,
            );
            if rc != ffi::SQLITE_OK {
                break;
            }
            at += chunk.len() as i64;
        }
        log.held.clear();
        if log.held.capacity() > MAX_HELD {
            log.held = Vec::new();
        }
        rc
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    unsafe {
        let log = &mut *(file as *mut LogFile);
        let amount = amount.max(0) as usize;
        let contiguous = !log.held.is_empty() && offset == log.held_at + log.held.len() as i64;
        if !contiguous || log.held.len() + amount > MAX_HELD {
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            log.held_at = offset;
        }
        log.held
            .extend_from_slice(std::slice::from_raw_parts(data as *const u8, amount));
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let flushed = flush(file);
        let closed = methods(file)
            .xClose
            .map_or(ffi::SQLITE_OK, |f| f(real_of(file)));
        ptr::drop_in_place(&mut (*(file as *mut LogFile)).held);
        (*file).pMethods = ptr::null();
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    data: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        methods(file).xRead.expect("a file reads")(real_of(file), data, amount, offset)
    }
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        methods(file).xTruncate.expect("a file truncates")(real_of(file), size)
    }
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        methods(file).xSync.expect("a file syncs")(real_of(file), flags)
    }
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        methods(file).xFileSize.expect("a file has a size")(real_of(file), size)
    }
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        match methods(file).xFileControl {
            Some(f) => f(real_of(file), op, arg),
            None => ffi::SQLITE_NOTFOUND,
        }
    }
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    unsafe {
        methods(file)
            .xLock
            .map_or(ffi::SQLITE_OK, |f| f(real_of(file), level))
    }
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    unsafe {
        methods(file)
            .xUnlock
            .map_or(ffi::SQLITE_OK, |f| f(real_of(file), level))
    }
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    unsafe {
        match methods(file).xCheckReservedLock {
            Some(f) => f(real_of(file), out),
            None => {
                *out = 0;
                ffi::SQLITE_OK
            }
        }
    }
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe { methods(file).xSectorSize.map_or(4096, |f| f(real_of(file))) }
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        methods(file)
            .xDeviceCharacteristics
            .map_or(0, |f| f(real_of(file)))
    }
}

/// Methods of a log whose writes are held (see the module's documentation). A log is never
/// memory-mapped or given a wal-index of its own, so the version-2 and -3 methods are not
/// offered.
static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// Methods of a log written through as it comes (nothing is ever held).
static THROUGH: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    xWrite: Some(write_through),
    ..METHODS
};

unsafe extern "C" fn write_through(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    unsafe { methods(file).xWrite.expect("a file writes")(real_of(file), data, amount, offset) }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::path::PathBuf;

    use super::{MAX_HELD, MAX_WRITE};

    thread_local! {
        /// Writes of held bytes made on this thread.
        pub(super) static WRITES: Cell<usize> = const { Cell::new(0) };
    }

    /// A fresh directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let dir = std::env::temp_dir()
                .join(format!("refit-wal-writes-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn body(i: usize, n: usize) -> Vec<u8> {
        (0..n).map(|j| (i * 31 + j * 7 + j / 4096) as u8).collect()
    }

    #[test]
    fn commits_are_written_in_few_pieces_and_read_and_recovered_whole() {
        let scratch = Scratch::new();
        let path = scratch.0.join("t.db");
        let setup = rusqlite::Connection::open(&path).unwrap();
        setup
            .execute_batch(
                "PRAGMA journal_mode = WAL; \
                 CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL);",
            )
            .unwrap();
        let mut writer = crate::db::open_direct(&format!("sqlite://{}", path.display())).unwrap();
        // Nothing is checkpointed: every commit stays in the log for the crash image below.
        writer
            .execute_batch("PRAGMA wal_autocheckpoint = 0")
            .unwrap();
        let reader = rusqlite::Connection::open(&path).unwrap();
        reader
            .execute_batch("PRAGMA wal_autocheckpoint = 0")
            .unwrap();

        // A page, a few, more than one write's worth, more than is ever held.
        let sizes = [10, 5_000, 200_000, MAX_WRITE * 3 + 17, MAX_HELD + 12_345, 1];
        let mut expected = Vec::new();
        for (i, &n) in sizes.iter().cycle().take(12).enumerate() {
            let id = i as i64;
            let row = body(i, n);
            let writes = WRITES.with(Cell::get);
            let tx = writer.transaction().unwrap();
            tx.execute("INSERT INTO t (id, body) VALUES (?1, ?2)", (id, &row))
                .unwrap();
            tx.commit().unwrap();
            // Frames of 4,120 bytes, two writes each without this VFS.
            let frames = n / 4096 + 1;
            let made = WRITES.with(Cell::get) - writes;
            assert!(
                made <= (frames * 4120).div_ceil(MAX_WRITE) + 2 + n / MAX_HELD,
                "{made} writes for {frames} frames"
            );
            // Another connection (the default VFS) reads the commit at once, from the log.
            let got: Vec<u8> = reader
                .query_row("SELECT body FROM t WHERE id = ?1", [id], |r| r.get(0))
                .unwrap();
            assert!(got == row, "row {id} reads back changed");
            expected.push((id, row));
            // A transaction rolled back leaves nothing behind to be written over a later
            // commit of another connection.
            if i % 3 == 0 {
                let tx = writer.transaction().unwrap();
                tx.execute(
                    "INSERT INTO t (id, body) VALUES (?1, ?2)",
                    (10_000 + id, vec![0xAA_u8; 3 * MAX_WRITE]),
                )
                .unwrap();
                drop(tx);
                let other = body(1000 + i, 70_000);
                reader
                    .execute(
                        "INSERT INTO t (id, body) VALUES (?1, ?2)",
                        (20_000 + id, &other),
                    )
                    .unwrap();
                expected.push((20_000 + id, other));
            }
        }
        expected.sort();
        let read_all = |conn: &rusqlite::Connection| -> Vec<(i64, Vec<u8>)> {
            let mut statement = conn.prepare("SELECT id, body FROM t ORDER BY id").unwrap();
            statement
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert!(read_all(&writer) == expected);

        // The files as a crash leaves them: the database and the log, copied while open.
        let image = scratch.0.join("image.db");
        std::fs::copy(&path, &image).unwrap();
        std::fs::copy(
            format!("{}-wal", path.display()),
            format!("{}-wal", image.display()),
        )
        .unwrap();
        let recovered = rusqlite::Connection::open(&image).unwrap();
        let check: String = recovered
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        assert!(
            read_all(&recovered) == expected,
            "the log recovers every commit"
        );
    }
}
