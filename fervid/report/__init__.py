"""The research report: see who is who, and open the results in the tools researchers use.

Per input (``--no-report`` turns it all off):

* :mod:`~fervid.report.collect`: the frame sink that cuts faces while frames stream (frames
  are not kept); :mod:`~fervid.report.gallery` picks each subject's best face and faces over
  time, :mod:`~fervid.report.moments` the peaks of the smoothed probabilities;
* :mod:`~fervid.report.sink`: the input sink that writes ``faces/``, ``<stem>.faces.png``,
  ``moments/``, ``<stem>.moments.csv``, ``<stem>.eaf`` (:mod:`~fervid.report.elan`) and
  ``<stem>.report.html`` (:mod:`~fervid.report.context`, :mod:`~fervid.report.chart`,
  :mod:`~fervid.report.html` and the Jinja2 templates in ``templates/``);
* :mod:`~fervid.report.subjects`: tracks mapped to persons (or tracks alone without identity).

Per output folder, :mod:`~fervid.report.index` writes ``index.html`` (``fervid annotate`` after
a batch, ``fervid summarize``).
"""
