//! Any byte string: `decode` returns a model or an error, never panics; and what decodes
//! re-encodes to a file that decodes to the same costs (the writer accepts what the reader
//! accepts).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for validated in [
        flowgate_shared::decode(data),
        flowgate_shared::decode_payload(data),
    ]
    .into_iter()
    .flatten()
    {
        let file = flowgate_shared::encode(&validated.model).expect("a valid model encodes");
        let again = flowgate_shared::decode(&file).expect("an encoded model decodes");
        assert_eq!(again.summary, validated.summary);
    }
});
