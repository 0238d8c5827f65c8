//! Rhai module `report`: PNG charts from tables and notebooks written with their outputs.

use crate::api::Api;
use crate::errors::{IntoRhai, msg_err};
use crate::state::Host;
use rhai::Map;
use std::sync::{Arc, Mutex};
use yunmin_core::report::{CellOutput, ChartConfig, Notebook, Table};

/// Handle to a notebook being built (shared, so method calls on copies add to the same one).
#[derive(Clone, Default)]
pub struct NotebookHandle(Arc<Mutex<Notebook>>);

impl NotebookHandle {
    fn with<R>(&self, f: impl FnOnce(&mut Notebook) -> R) -> R {
        f(&mut self.0.lock().expect("notebook lock"))
    }
}

/// Registers the `report` module.
pub fn register(api: &mut Api, host: &Arc<Host>) {
    api.engine()
        .register_type_with_name::<NotebookHandle>("Notebook");
    let h = host.clone();
    api.func(
        "plot_bars",
        &["table", "path", "opts"],
        &format!(
            "Grouped bar chart PNG from a table (bars start at 0 unless `y_min` is given; the legend\n\
             sits in a column right of the plot). Returns the path (inside the run root). Options:\n{}",
            yunmin_core::config::describe::<ChartConfig>()
        ),
        move |t: &mut Table, path: &str, opts: Map| {
            let c: ChartConfig = crate::primitive::from_rhai_as("plot_bars", ChartConfig::default(), opts)?;
            let p = h.ctx.write_path(path).rhai()?;
            c.bars(t, &p).map_err(|e| msg_err(format!("plot_bars: {e}")))?;
            Ok::<_, crate::errors::RhaiError>(p.to_string_lossy().to_string())
        },
    );
    let h = host.clone();
    api.func(
        "plot_lines",
        &["table", "path", "opts"],
        &format!(
            "Line chart PNG from a table (y bounds from the data unless given). Returns the path\n\
             (inside the run root). Options:\n{}",
            yunmin_core::config::describe::<ChartConfig>()
        ),
        move |t: &mut Table, path: &str, opts: Map| {
            let c: ChartConfig =
                crate::primitive::from_rhai_as("plot_lines", ChartConfig::default(), opts)?;
            let p = h.ctx.write_path(path).rhai()?;
            c.lines(t, &p)
                .map_err(|e| msg_err(format!("plot_lines: {e}")))?;
            Ok::<_, crate::errors::RhaiError>(p.to_string_lossy().to_string())
        },
    );
    api.func(
        "notebook",
        &[],
        "A new Jupyter notebook (nbformat 4.5), written with its outputs; the same cells give the same\n\
         bytes. `scripts/interop/run_notebook.py` runs one and compares what it shows with them.",
        NotebookHandle::default,
    );
    api.func(
        "markdown",
        &["nb", "text"],
        "Appends a markdown cell.",
        |nb: &mut NotebookHandle, text: &str| {
            nb.with(|n| {
                n.markdown(text);
            })
        },
    );
    api.func(
        "code_table",
        &["nb", "source", "table"],
        "Appends a code cell showing `table` (every row, floats with 4 decimals). `source`: the Python\n\
         that shows the same table run in the notebook's directory (pandas with `display.precision` 4).",
        |nb: &mut NotebookHandle, src: &str, t: Table| {
            nb.with(|n| {
                n.code(src, vec![CellOutput::Table(t)]);
            })
        },
    );
    api.func(
        "code_text",
        &["nb", "source", "text"],
        "Appends a code cell whose output is printed text.",
        |nb: &mut NotebookHandle, src: &str, text: &str| {
            nb.with(|n| {
                n.code(src, vec![CellOutput::Text(text.to_string())]);
            })
        },
    );
    let h = host.clone();
    api.func(
        "code_image",
        &["nb", "source", "png"],
        "Appends a code cell showing a PNG file (embedded as base64); `source` draws the chart\n\
         (matplotlib) when run.",
        move |nb: &mut NotebookHandle, src: &str, png: &str| {
            let p = h.ctx.read_path(png).rhai()?;
            let bytes = std::fs::read(&p)
                .map_err(|e| msg_err(format!("code_image: reading {}: {e}", p.display())))?;
            nb.with(|n| {
                n.code(src, vec![CellOutput::Png(bytes)]);
            });
            Ok::<_, crate::errors::RhaiError>(())
        },
    );
    let h = host.clone();
    api.func(
        "write",
        &["nb", "path"],
        "Writes the notebook (relative paths inside the run root); returns the path.",
        move |nb: &mut NotebookHandle, path: &str| {
            let p = h.ctx.write_path(path).rhai()?;
            nb.with(|n| n.write(&p)).rhai()?;
            Ok::<_, crate::errors::RhaiError>(p.to_string_lossy().to_string())
        },
    );
}
