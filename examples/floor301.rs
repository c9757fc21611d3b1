//! The floor of the stack for `../shared/bench`'s W1: hyper 1 + tokio
//! answering every request with the same 301, no engine, no logging.
//! htgate's W1 is reported as a fraction of this server's in the same run
//! (issue 20); what lies between the two is htgate's own work.
//!
//! `floor301 HTTP_ADDR [OTHER_ADDR…]`: one current-thread runtime, every
//! address served in plain HTTP (the harness only needs its TLS port to
//! accept connections; W1 is plain HTTP).

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;

fn main() -> std::io::Result<()> {
    let addrs: Vec<String> = std::env::args().skip(1).collect();
    if addrs.is_empty() {
        eprintln!("usage: floor301 ADDR [ADDR…]");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for addr in addrs {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(async move {
                        let service = service_fn(|_req| async {
                            let resp = http::Response::builder()
                                .status(301)
                                .header("location", "https://127.0.0.1/")
                                .header("content-type", "text/html; charset=iso-8859-1")
                                .body(Full::new(Bytes::from_static(b"moved\n")));
                            Ok::<_, Infallible>(resp.unwrap_or_default())
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), service)
                            .await;
                    });
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    })
}
