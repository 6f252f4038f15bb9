//! The models (sequential specifications) the checker ships with.

mod porcupine_kv;
mod register;
mod sextant_kv;

pub use porcupine_kv::{
    HashedStr, KvStore, PorcupineKvInput, PorcupineKvModel, PorcupineKvOutput,
    PorcupineKvUnpartitioned,
};
pub use register::{RegisterInput, RegisterModel, RegisterOutput};
pub use sextant_kv::{KvInput, KvModel, KvOutput};
