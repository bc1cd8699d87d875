"""The demo district (鲤城区 Licheng, Quanzhou), built deterministically from a seed.

Real data: the district outline, the subdistricts (街道) and communities (社区) with their
names and 2016 statistical codes, and the centre points Amap publishes for about half of
the communities, all from Vonng/adcode (CC BY 4.0) in ``data/boundaries``
(:mod:`~mapsvc.demo.source`). These are GCJ-02 and are converted to WGS84 with
:mod:`mapsvc.services.chinacrs` before anything else.

Everything else is generated, because no open source publishes it, one module per stage:

* :mod:`~mapsvc.demo.areas`: community polygons (Voronoi cells around the real community
  points, clipped to the district), subdistricts as unions of their communities, grids of
  about 400 households; population, households and enterprises;
* :mod:`~mapsvc.demo.streets`: a street network (jittered lattice, named 路/街/巷, split at
  junctions);
* :mod:`~mapsvc.demo.staff`: staff in every role, chiefs with contiguous sets of segments,
  posts with a little history;
* :mod:`~mapsvc.demo.centres`: service centres;
* :mod:`~mapsvc.demo.incidents`: a year of incidents clustered in hotspots, with their
  closed-loop history;
* :mod:`~mapsvc.demo.patrols`: a few days of patrol tracks and eight weeks of visits.

:mod:`~mapsvc.demo.load` runs them in order in one transaction. All geometry is generated
in a local metric frame (:class:`~mapsvc.demo.geometry.Metric`) and converted to WGS84
once, vertex by vertex, so shared boundaries stay shared. Rows are written with COPY; the
whole demo with 100,000 incidents loads in well under a minute.

This package is domain logic: it takes its settings and a progress factory from the
caller and never imports the CLI, the web layer or the map layers.
"""

from mapsvc.demo.load import STAGES, arguments_from_settings, is_loaded, load_demo
from mapsvc.demo.summary import format_summary

__all__ = ["STAGES", "arguments_from_settings", "format_summary", "is_loaded", "load_demo"]
