//! Progress from wimlib's callback, reduced to what ois shows and acts on.

use std::ffi::c_void;

use wimlib_sys as sys;

#[derive(Debug, Clone, Copy)]
pub enum ProgressEvent {
    /// Bytes of file data written so far while writing a WIM.
    Write { done: u64, total: u64 },
    /// Bytes checked so far while verifying.
    Verify { done: u64, total: u64 },
}

/// What the sink asks wimlib to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Continue,
    Abort,
}

pub(super) type Sink<'a> = &'a mut dyn FnMut(ProgressEvent) -> Progress;

pub(super) unsafe extern "C" fn trampoline(
    msg: sys::wimlib_progress_msg,
    info: *mut sys::wimlib_progress_info,
    ctx: *mut c_void,
) -> sys::wimlib_progress_status {
    if ctx.is_null() || info.is_null() {
        return sys::wimlib_progress_status_WIMLIB_PROGRESS_STATUS_CONTINUE;
    }
    // SAFETY: wimlib passes the union member matching `msg`; ctx is the boxed sink owned by
    // the Wim that registered it.
    let event = unsafe {
        match msg {
            sys::wimlib_progress_msg_WIMLIB_PROGRESS_MSG_WRITE_STREAMS => {
                let w = &(*info).write_streams;
                Some(ProgressEvent::Write {
                    done: w.completed_bytes,
                    total: w.total_bytes,
                })
            }
            sys::wimlib_progress_msg_WIMLIB_PROGRESS_MSG_VERIFY_STREAMS => {
                let v = &(*info).verify_streams;
                Some(ProgressEvent::Verify {
                    done: v.completed_bytes,
                    total: v.total_bytes,
                })
            }
            _ => None,
        }
    };
    let Some(event) = event else {
        return sys::wimlib_progress_status_WIMLIB_PROGRESS_STATUS_CONTINUE;
    };
    let sink = unsafe { &mut *(ctx as *mut Sink<'_>) };
    // A panic must not unwind into C.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(event))) {
        Ok(Progress::Continue) => sys::wimlib_progress_status_WIMLIB_PROGRESS_STATUS_CONTINUE,
        _ => sys::wimlib_progress_status_WIMLIB_PROGRESS_STATUS_ABORT,
    }
}
