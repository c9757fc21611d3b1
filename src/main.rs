//! The `htgate` command: the CLI over the workspace crates (see
//! ARCHITECTURE.md).

mod cli;

// jemalloc with its background purging threads rather than glibc's malloc:
// measured with the soak script's HTTP/2 zero-window attack (20,000 streams
// held open), glibc kept the freed memory once the attack was over (RSS
// 10 MiB before, 101 MiB at the peak, still 95 MiB 20 s after), jemalloc
// gives it back (11, 116, then 27 MiB).  mimalloc kept more (164 MiB
// after a 212 MiB peak).  Figures in SECURITY.md.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    htgate_server::tls::install_default_provider();
    cli::run()
}
