"""Building blocks of the search figures: the Agg canvas and shared colours (`canvas`) and
the cell diagrams (`cells`). The figures of a search's history, and the public surface the
study layer uses, are in `hls_tune.engine.plots`."""
