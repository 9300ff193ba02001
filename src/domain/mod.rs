//! Types that are valid by construction: input is parsed into them at the edge, and code
//! inside never checks them again.

mod access_key;
pub mod calendar;
mod owner;
mod plan;
mod predictor_tag;
mod tag_pattern;

pub use access_key::{AccessKey, AccessKeyError, KeyHash, KeyPrefix, MAX_KEY_BYTES, random_base62};
pub use owner::{Owner, OwnerError};
pub use plan::PlanRules;
pub use predictor_tag::{PredictorTag, PredictorTagError};
pub use tag_pattern::{Predictors, TagPatternError};
