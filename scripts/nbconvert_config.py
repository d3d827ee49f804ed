"""nbconvert settings for export_pdf.sh."""
from pathlib import Path

c = get_config()  # noqa: F821 (provided by traitlets when the config file is loaded)

# Run the notebook from the repository root, with no time limit per cell.
c.ExecutePreprocessor.timeout = None
# d2l draws SVG figures; convert them for LaTeX with rsvg-convert instead of Inkscape.
c.SVG2PDFPreprocessor.command = ["rsvg-convert", "-f", "pdf", "-o", "{to_filename}", "{from_filename}"]
# LaTeX template: nbconvert's own, with unnumbered sections (scripts/templates/assignment).
c.TemplateExporter.extra_template_basedirs = [str(Path(__file__).parent / "templates")]
c.LatexExporter.template_name = "assignment"
# Answers rendered from computed values, and bookkeeping (tables of runs, the appendix's reading of
# stored results): the PDF shows what they output, not the code that writes it.
c.TagRemovePreprocessor.enabled = True
c.TagRemovePreprocessor.remove_input_tags = {"answer", "hide-input"}
