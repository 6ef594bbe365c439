//! What the shepherd does with a request stream before it forks: decode
//! every message, and for a spawn request build the exec plan (NUL checks,
//! argv and environment arrays, limits) exactly as `start_child` does.
//! Nothing is executed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netrunner_proto::{Encode, FrameDecoder, ToShepherd, PROTOCOL_VERSION};
use netrunner_sys::process::ExecPlan;

fuzz_target!(|data: &[u8]| {
    let mut decoder = FrameDecoder::new();
    decoder.push(
        &ToShepherd::Hello {
            version: PROTOCOL_VERSION,
        }
        .to_frame(),
    );
    decoder.push(data);
    while let Ok(Some(msg)) = decoder.next_message::<ToShepherd>() {
        if let ToShepherd::Spawn(req) = msg {
            if let Ok(plan) = ExecPlan::new(
                &req.program,
                &req.argv,
                &req.env,
                req.cwd.as_deref(),
                req.isolation,
            ) {
                let _ = plan.with_limits(&req.rlimits, req.umask);
            }
        }
    }
});
