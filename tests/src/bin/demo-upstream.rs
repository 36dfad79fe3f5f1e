//! The demo's upstream service: `demo-upstream ADDR` (default 127.0.0.1:0);
//! prints `listening upstream ADDR` once bound.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening upstream {}", listener.local_addr()?);
    gatehouse_tests::upstream::serve(listener).await;
    Ok(())
}
