//! A hit counter shared by every instance: an axum server answering `GET /` with
//! `Hits: N`, where N lives in a PostgreSQL atom. Run several on different ports against
//! one database and the count stays exact.
//!
//! ```text
//! DATABASE_URL=postgres://user:password@localhost/app PORT=3000 \
//!     cargo run --example hitcounter --features pg
//! curl http://127.0.0.1:3000/      # Hits: 1
//! ```
//!
//! Environment: `DATABASE_URL` (required; with `?sslmode=verify-full&sslrootcert=...` for
//! a managed database, see the README), `PORT` (default 3000), `HOST` (default
//! 127.0.0.1), `HITS_TABLE` (default `hits`).

use std::env;
use std::error::Error;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use enduro::AsyncAtom;

/// One hit: a swap that returns once PostgreSQL has committed it.
async fn hit(State(hits): State<AsyncAtom<u64>>) -> Result<String, (StatusCode, String)> {
    match hits.swap(|n| n + 1).await {
        Ok(n) => Ok(format!("Hits: {n}\n")),
        Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"))),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain: what enduro says (the server's own words included), then
            // each cause underneath.
            eprintln!("error: {e}");
            let mut cause = e.source();
            while let Some(e) = cause {
                eprintln!("  caused by: {e}");
                cause = e.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let db = env::var("DATABASE_URL")
        .map_err(|_| "set DATABASE_URL, e.g. postgres://user:password@localhost/app")?;
    let port: u16 = env::var("PORT").unwrap_or_else(|_| "3000".into()).parse()?;
    let host = env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let table = env::var("HITS_TABLE").unwrap_or_else(|_| "hits".into());

    let hits = enduro::postgresql_atom_async(0u64, &db, &table).await?;
    let app = Router::new().route("/", get(hit)).with_state(hits);
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    println!("hitcounter listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
