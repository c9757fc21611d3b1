fn main() -> std::process::ExitCode {
    htgate::cli::run()
}
