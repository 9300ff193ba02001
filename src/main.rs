//! The binary: the command line, with the composition root as the way to serve.

fn main() -> std::process::ExitCode {
    tollbooth::cli::main(tollbooth::app::serve)
}
