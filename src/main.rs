fn main() -> std::process::ExitCode {
    tollbooth::cli::main()
}
