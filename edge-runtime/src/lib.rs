//! flowgate's gatekeeper.
#![cfg_attr(not(feature = "std"), no_std)]
