//! flowgate's model format.
#![no_std]
