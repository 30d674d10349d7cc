"""The HTML page `dvc plots show` and `dvc plots diff` fill, with Vega's JavaScript inlined so charts draw offline.

DVC's own page loads vega, vega-lite and vega-embed from a CDN; .dvc/config's plots.html_template names this
page instead. `make` writes it at set-up from the vl-convert-python package it installs, so no third-party
JavaScript is committed and no page fetches anything.
"""

import configparser
import functools
from pathlib import Path

import vl_convert

from pipeline.errors import PipelineError, run_stage
from pipeline.files import atomic_output

# DVC's chart templates declare the Vega-Lite v5 schema; vega-embed warns when the library's major differs.
VEGA_LITE = "5.21"

# DVC replaces {refresh_tag} and {plot_divs}; leaving out its {scripts} keeps its CDN <script> tags out.
# Each chart's div calls vegaEmbed(id, spec) with no options: the wrapper draws SVG rather than vega-embed 6's
# default canvas, so the lines are elements that a test can count.
PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <script>BUNDLE</script>
    <script>
        const embedVega = window.vegaEmbed;
        window.vegaEmbed = (element, spec, options) => embedVega(element, spec, {renderer: "svg", ...options});
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
        /* An image plot is a div (styled white-space: nowrap) holding its name and one div per run: the runs
           share the window's width, each PNG shrinking to its share, never growing past its own size. */
        div[style*="white-space"] {
            display: flex;
            flex-wrap: wrap;
            justify-content: center;
            white-space: normal !important;
        }
        div[style*="white-space"] > p {
            flex-basis: 100%;
        }
        div[style*="white-space"] > div {
            flex: 0 1 auto;
            min-width: 0;
        }
        div[style*="white-space"] img {
            max-width: 100%;
            height: auto;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def page_path(root: Path) -> Path:
    """Where .dvc/config's plots.html_template points: DVC joins a relative path to the .dvc folder."""
    config = configparser.ConfigParser()
    config.read(root / ".dvc" / "config")
    return root / ".dvc" / config["plots"]["html_template"]


@functools.cache
def page() -> str:
    """The page's text: DVC's placeholders around the bundle of vega, vega-lite and vega-embed."""
    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE)
    # Any of these would break the page: `</script` ends the <script> early, DVC would fill a placeholder.
    for breaking in ("</script", "{plot_divs}", "{refresh_tag}", "{scripts}"):
        if breaking in bundle:
            raise PipelineError(f"vl-convert-python {vl_convert.__version__}: its bundle holds {breaking!r}")
    return PAGE.replace("BUNDLE", bundle)


def write_page(root: Path) -> Path:
    """Write the page for the project at `root`, unless it already holds this text; its path."""
    path = page_path(root)
    text = page()
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        with atomic_output(path) as temporary:
            temporary.write_text(text, encoding="utf-8")
    return path


def main() -> None:
    path = write_page(Path.cwd())  # make runs every target from the project root
    print(f"{path.relative_to(Path.cwd())}: vega {vl_convert.get_vega_version()}, vega-lite {VEGA_LITE}, "
          f"vega-embed {vl_convert.get_vega_embed_version()} inlined")


if __name__ == "__main__":
    run_stage(main)
