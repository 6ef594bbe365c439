//! What every decoder target checks: a payload that decodes re-encodes to
//! a frame that decodes to the same message, and a stream fed in arbitrary
//! pieces never buffers more than the frame cap allows.

use netrunner_proto::{Decode, Encode, FrameDecoder, HelloFrame, HEADER_LEN, MAX_FRAME_LEN};

/// Checks `data` as one payload and as a stream of `M` after `hello`.
pub fn check<M>(data: &[u8], hello: &[u8])
where
    M: Decode + Encode + HelloFrame + PartialEq + std::fmt::Debug,
{
    if let Ok(msg) = M::decode(data) {
        let frame = msg.to_frame();
        let again = M::decode(&frame[HEADER_LEN..]).expect("a re-encoded message decodes");
        assert_eq!(again, msg);
    }
    let Some((&split_seed, stream)) = data.split_first() else {
        return;
    };
    let mut decoder = FrameDecoder::new();
    decoder.push(hello);
    let mut rest = stream;
    let mut piece = usize::from(split_seed % 16) + 1;
    while !rest.is_empty() {
        let n = piece.min(rest.len());
        decoder.push(&rest[..n]);
        rest = &rest[n..];
        piece = piece * 7 % 31 + 1;
        loop {
            match decoder.next_message::<M>() {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                // A stream that breaks the protocol ends the link.
                Err(_) => return,
            }
        }
        assert!(decoder.buffered() <= HEADER_LEN + MAX_FRAME_LEN + 64);
    }
}
