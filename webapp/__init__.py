"""The local web demo's parts without the web: the direction explorer, image segmentation and the run
view. `app.py` lays them out with Gradio; they are tested here without a browser (tests/test_webapp.py)
and in one (tests/test_app_browser.py)."""
