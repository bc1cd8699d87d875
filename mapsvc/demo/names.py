"""Chinese names for the demo's people and streets, drawn from one random stream.

People get a surname from a weighted list of common Fujian surnames and one or two given
characters; streets a two-character stem and 路 / 街 / 巷. Both stages that name things
(streets, then staff) share one :class:`Names`, so a street name is never reused.
"""

from __future__ import annotations

import numpy as np

_SURNAMES = list("陈林黄王李张吴蔡郑许洪苏庄施杨刘曾柯谢周叶何郭傅卢骆潘戴余赵")
_SURNAME_W = np.array([12, 11, 9, 6, 5, 5, 5, 5, 4, 4, 4, 3, 3, 3, 3, 3, 3, 2, 2, 2] + [1.5] * 10)
_GIVEN = list(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玲建国志文辉鹏斌婷雪慧晓燕红海龙金福荣春梅兰泉清源宏毅晨宇欣怡佳俊豪雅琳"
)
_STREET_A = list(
    "东西南北中新金银玉花桂梅竹莲兴华和平安福寿康宁泰源清文武胜庆聚宝义仁德通承后井塔桥池溪涂象奎甲聚云鹤凤"
)
_STREET_B = list("山峰湖江门井桥亭坊园林田塘浦洲头兴华安宁福寿德源泉霞光明阳春新美丰盛昌隆榕荔")


class Names:
    """Person and street names from ``rng``; street names are unique across calls."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        combos = [a + b for a in _STREET_A for b in _STREET_B if a != b]
        self.street_stems = [combos[i] for i in rng.permutation(len(combos))]
        self.used: set[str] = set()
        self.sw = _SURNAME_W / _SURNAME_W.sum()

    def person(self) -> str:
        """A full name, family name first."""
        s = _SURNAMES[self.rng.choice(len(_SURNAMES), p=self.sw)]
        k = 1 if self.rng.random() < 0.25 else 2
        return s + "".join(_GIVEN[i] for i in self.rng.integers(0, len(_GIVEN), k))

    def street(self, kind: str) -> str:
        """A new name for a ``road`` (路), ``street`` (街) or ``lane`` (巷)."""
        suffix = {"road": "路", "street": "街", "lane": "巷"}[kind]
        while self.street_stems:
            name = self.street_stems.pop() + suffix
            if name not in self.used:
                self.used.add(name)
                return name
        n = len(self.used)
        self.used.add(f"第{n}{suffix}")
        return f"第{n}{suffix}"
