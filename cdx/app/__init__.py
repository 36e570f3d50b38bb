"""The cdx Streamlit app (`make app`): start runs, watch them, explore what they wrote.

Layering: the app reads run directories through `cdx.io` (see `cdx.app.runs`) and starts every
run as a background `python -m cdx.run ...` subprocess, the same command as the CLI
(`cdx.app.jobs`); it never imports `cdx.tasks`. Only the Side by side page loads models itself
(`cdx.app.live`), cached per process with `st.cache_resource` and used under one lock.
"""
