//! The arpwatch binary: everything is in the library's `app` module.

fn main() -> std::process::ExitCode {
    arpwatch::main()
}
