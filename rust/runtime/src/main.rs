fn main() {
    std::process::exit(dockyard_runtime::cli::main());
}
