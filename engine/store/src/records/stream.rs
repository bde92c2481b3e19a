//! Streaming a select of any size with flat memory: the rows are fetched in keyset pages of
//! [`STREAM_CHUNK_ROWS`], each page a short query of its own.
//!
//! Holding no transaction or cursor open between pages keeps a slow reader (an HTTP export)
//! from pinning a connection or blocking SQLite's WAL checkpoints. The price is that the
//! stream is not one snapshot: a row inserted or changed during the export is seen once if it
//! sorts after the current position and not at all otherwise, and a row that existed
//! throughout is seen exactly once. This module does not format rows (CSV, NDJSON).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt as _};

use super::{Row, SelectQuery, select};
use crate::db::Db;
use crate::error::StoreError;

/// Rows per page of [`select_stream`].
pub const STREAM_CHUNK_ROWS: u32 = 1_000;

/// The rows of [`select_stream`]: a [`Stream`], which can also be read without any stream
/// library through [`RowStream::next_row`].
pub struct RowStream<'q> {
    rows: BoxStream<'q, Result<Row, StoreError>>,
}

impl RowStream<'_> {
    /// The next row, or `None` at the end.
    pub async fn next_row(&mut self) -> Option<Result<Row, StoreError>> {
        self.rows.next().await
    }
}

impl Stream for RowStream<'_> {
    type Item = Result<Row, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rows.as_mut().poll_next(context)
    }
}

/// Every row `query` selects, in its order, fetched page by page (see the module comment).
/// `query.limit`, if any, caps the total. After an error the stream ends. The stream owns a
/// handle to the pool, so it borrows only what `query` borrows.
pub fn select_stream<'q>(db: &Db, query: SelectQuery<'q>) -> RowStream<'q> {
    let remaining = query.limit;
    let state = StreamState {
        db: db.clone(),
        query,
        buffer: VecDeque::new(),
        remaining,
        finished: false,
    };
    let rows = stream::unfold(state, |mut state| async move {
        loop {
            if let Some(row) = state.buffer.pop_front() {
                return Some((Ok(row), state));
            }
            if state.finished {
                return None;
            }
            let page = state.remaining.map_or(STREAM_CHUNK_ROWS, |remaining| {
                remaining.min(STREAM_CHUNK_ROWS)
            });
            if page == 0 {
                return None;
            }
            state.query.limit = Some(page);
            match select(&state.db, &state.query).await {
                Ok(rows) => {
                    let fetched = u32::try_from(rows.len()).unwrap_or(u32::MAX);
                    state.finished = fetched < page;
                    state.remaining = state
                        .remaining
                        .map(|remaining| remaining.saturating_sub(fetched));
                    if let Some(last) = rows.last() {
                        state.query.after = Some(state.query.cursor_after(last));
                    }
                    state.buffer.extend(rows);
                }
                Err(error) => {
                    state.finished = true;
                    return Some((Err(error), state));
                }
            }
        }
    });
    RowStream { rows: rows.boxed() }
}

struct StreamState<'q> {
    db: Db,
    query: SelectQuery<'q>,
    buffer: VecDeque<Row>,
    remaining: Option<u32>,
    finished: bool,
}
