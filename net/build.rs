//! Generates the etcd v3 gRPC types and services from `proto/` with protox (pure Rust), so the
//! build needs no system `protoc`. The simulator build (`--cfg madsim`) has no gRPC layer.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    if std::env::var_os("CARGO_CFG_MADSIM").is_some() {
        return Ok(());
    }
    let fds = protox::compile(
        [
            "etcd/api/etcdserverpb/rpc.proto",
            "etcd/server/v3lockpb/v3lock.proto",
            "etcd/server/v3electionpb/v3election.proto",
        ],
        ["proto"],
    )?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
