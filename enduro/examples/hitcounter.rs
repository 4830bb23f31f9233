//! A hit counter shared by every instance: an axum server whose `GET /` counts a hit in a
//! live PostgreSQL atom. Run several on different ports against one database: the count
//! stays exact, and each instance's page follows the others' hits as they happen, with no
//! request reaching it (the atom is live: PostgreSQL tells it of every commit).
//!
//! ```text
//! DATABASE_URL=postgres://user:password@localhost/app PORT=3000 \
//!     cargo run --example hitcounter --features pg
//! curl http://127.0.0.1:3000/            # Hits: 1 (counts a hit)
//! curl http://127.0.0.1:3000/count       # Hits: 1 (reads the live atom; counts nothing)
//! curl -N http://127.0.0.1:3000/events   # data: 1, then one event per change, from any instance
//! open http://127.0.0.1:3000/page        # a page that shows the count live
//! ```
//!
//! Environment: `DATABASE_URL` (required; with `?sslmode=verify-full&sslrootcert=...` for
//! a managed database, see the README), `PORT` (default 3000), `HOST` (default
//! 127.0.0.1), `HITS_TABLE` (default `hits`).

use std::convert::Infallible;
use std::env;
use std::error::Error;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use enduro::{AsyncAtom, PgAtom};
use futures_util::Stream;

/// One hit: a swap that returns once PostgreSQL has committed it.
async fn hit(State(hits): State<AsyncAtom<u64>>) -> Result<String, (StatusCode, String)> {
    match hits.swap(|n| n + 1).await {
        Ok(n) => Ok(format!("Hits: {n}\n")),
        Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"))),
    }
}

/// The count as this instance knows it: no database round trip, and up to date with every
/// instance's hits, since the atom is live.
async fn count(State(hits): State<AsyncAtom<u64>>) -> String {
    format!("Hits: {}\n", hits.deref())
}

/// Server-sent events: the count now, then the count after each change, whichever
/// instance made it. A client that falls behind gets the latest count, not every one.
async fn events(
    State(hits): State<AsyncAtom<u64>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = hits.changes();
    let stream = futures_util::stream::unfold((changes, true), |(mut changes, first)| async move {
        if !first && changes.changed().await.is_err() {
            return None; // the atom is gone
        }
        let n: Arc<u64> = Arc::clone(&changes.borrow_and_update());
        Some((Ok(Event::default().data(n.to_string())), (changes, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn page() -> Html<&'static str> {
    Html(
        r#"<!doctype html>
<title>Hits</title>
<h1>Hits: <span id="n">…</span></h1>
<p><button onclick="fetch('/')">Hit</button></p>
<script>
  new EventSource('/events').onmessage = (e) => { document.getElementById('n').textContent = e.data; };
</script>
"#,
    )
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

    let hits = PgAtom::builder(&db, &table)
        .live(true)
        .open_async(0u64)
        .await?;
    let app = Router::new()
        .route("/", get(hit))
        .route("/count", get(count))
        .route("/events", get(events))
        .route("/page", get(page))
        .with_state(hits);
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    println!("hitcounter listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
