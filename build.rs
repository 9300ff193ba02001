//! Rebuilds when a migration is added: `sqlx::migrate!` embeds the migration folders at
//! compile time, and Cargo does not otherwise notice a new file in them.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
