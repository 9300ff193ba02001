/// mimalloc gives memory freed after the ledger load back to the system, where the system
/// allocator kept it in per-thread arenas (README, "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tollbooth::cli::main()
}
