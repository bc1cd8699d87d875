"""The ground floor: the vocabulary every other part of the service stands on.

Nothing here imports Flask, folium, the layers, the services or the models, so the
services, the layers, the web views and the CLI can all use it:

* :mod:`mapsvc.core.errors`: the one error root (:class:`~mapsvc.core.errors.ServiceError`)
  and its kinds; the web maps them to HTTP statuses, the CLI to one clear line.
* :mod:`mapsvc.core.values`: parsing the values users type (bounding boxes, dates), the
  same for a request parameter, a CLI option and a JSON field.
* :mod:`mapsvc.core.i18n`: translation without Flask (message catalogues, ``N_``).
* :mod:`mapsvc.core.labels`: the labels of the domain's closed lists (severity classes...).
* :mod:`mapsvc.core.progress`: how long work reports progress (the CLI draws the bar).
"""
