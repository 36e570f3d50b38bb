"""`make app`: the cdx Streamlit app (`streamlit run cdx/app/main.py`).

Seven pages, each a script in cdx/app/views/ (runnable on its own, which is how the tests run them).
"What changed" is the default page, at `/`; every page also has its own URL (`/compare`, `/findings`, ...).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).resolve().parent / "views"
PAGES = [
    ("overview.py", "What changed", ":material/difference:", "what-changed"),
    ("compare.py", "Compare", ":material/play_arrow:", "compare"),
    ("explorer.py", "Run explorer", ":material/table_view:", "explorer"),
    ("side_by_side.py", "Side by side", ":material/compare:", "side-by-side"),
    ("findings.py", "Findings", ":material/fact_check:", "findings"),
    ("paired.py", "Paired samples", ":material/view_column_2:", "paired-samples"),
    ("search_sweeps.py", "Search and sweeps", ":material/query_stats:", "search-and-sweeps"),
]


def main() -> None:
    st.set_page_config(page_title="cdx", page_icon=":material/difference:", layout="wide")
    pages = [st.Page(VIEWS / f, title=t, icon=i, url_path=u, default=(n == 0))
             for n, (f, t, i, u) in enumerate(PAGES)]
    st.navigation(pages).run()


main()
