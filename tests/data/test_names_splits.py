"""Class names and split rules against the datasets' published sources (docs/data.md, "Sources").

NTU RGB+D 120: the "Action Classes" list of the dataset README (github.com/shahroudy/NTURGB-D), transcribed
below in its own "A<k>. <name>." format, and the copy of A001-A060 in /work/shared/data. PKU-MMD: the id list of
Actions.xlsx as public loaders transcribe it ("<id>,<name>"), and the published split counts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from skelssl.data import pkummd
from skelssl.data.ntu import NTU120_CLASS_NAMES
from skelssl.data.pkummd import ACTION_IDS, PKU_ACTION_NAMES, class_names, prepare_pkummd, read_split_list

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
NTU_NAMES_FILE = SHARED / "ntu_raw_samples" / "action_names_A001-A060.txt"

# The README's list as written there (typographic apostrophes, stray dots and tabs included).
NTU_README = """
A1. drink water. A2. eat meal/snack. A3. brushing teeth. A4. brushing hair. A5. drop. A6. pickup. A7. throw.
A8. sitting down. A9. standing up (from sitting position). A10. clapping. A11. reading. A12. writing.
A13. tear up paper. A14. wear jacket. A15. take off jacket. A16. wear a shoe. A17. take off a shoe.
A18. wear on glasses. A19. take off glasses. A20. put on a hat/cap. A21. take off a hat/cap. A22. cheer up.
A23. hand waving. A24. kicking something. A25. put something inside pocket / take out something from pocket.
A26. hopping (one foot jumping). A27. jump up. A28. make a phone call/answer phone.
A29. playing with phone/tablet. A30. typing on a keyboard. A31. pointing to something with finger.
A32. taking a selfie. A33. check time (from watch). A34. rub two hands together. A35. nod head/bow.
A36. shake head. A37. wipe face. A38. salute. A39. put the palms together. A40. cross hands in front (say stop).
A41. sneeze/cough. A42. staggering. A43. falling. A44. touch head (headache).
A45. touch chest (stomachache/heart pain). A46. touch back (backache). A47. touch neck (neckache).
A48. nausea or vomiting condition. A49. use a fan (with hand or paper)/feeling warm. .
A50. punching/slapping other person. A51. kicking other person. A52. pushing other person.
A53. pat on back of other person. A54. point finger at the other person. A55. hugging other person.
A56. giving something to other person. A57. touch other person's pocket. A58. handshaking.
A59. walking towards each other. A60. walking apart from each other. A61. put on headphone.
A62. take off headphone. A63. shoot at the basket. A64. bounce ball. A65. tennis bat swing.
A66. juggling table tennis balls. A67. hush (quite). A68. flick hair. A69. thumb up. A70. thumb down.
A71. make ok sign. A72. make victory sign. A73. staple book. A74. counting money. A75. cutting nails.
A76. cutting paper (using scissors). A77. snapping fingers. A78. open bottle. A79. sniff (smell).
A80. squat down. A81. toss a coin. A82. fold paper. A83. ball up paper. . A84. play magic cube.
A85. apply cream on face. A86. apply cream on hand back. A87. put on bag. A88. take off bag.
A89. put something into a bag. A90. take something out of a bag. A91. open a box. A92. move heavy objects.
A93. shake fist. A94. throw up cap/hat. A95. hands up (both hands). A96. cross arms. A97. arm circles.
A98. arm swings. A99. running on the spot. A100.\tbutt kicks (kick backward). A101.\tcross toe touch.
A102.\tside kick. A103.\tyawn. A104.\tstretch oneself. A105.\tblow nose. A106.\thit other person with something.
A107.\twield knife towards other person. A108.\tknock over other person (hit with body).
A109.\tgrab other person’s stuff. A110.\tshoot at other person with a gun. A111.\tstep on foot.
A112.\thigh-five. A113.\tcheers and drink. A114.\tcarry something with other person.
A115.\ttake a photo of other person. A116.\tfollow other person. A117.\twhisper in other person’s ear.
A118.\texchange things with other person.
A119.\tsupport somebody with one’s hand (someone is sick, help him to walk).
A120. finger-guessing game (playing rock-paper-scissors).
"""

# Actions.xlsx of PKU-MMD as "<id>,<name>" (the form in which public loaders transcribe it).
PKU_ACTIONS_XLSX = """1,bow 2,brushing hair 3,brushing teeth 4,check time (from watch) 5,cheer up 6,clapping
7,cross hands in front (say stop) 8,drink water 9,drop 10,eat meal/snack 11,falling
12,giving something to other person 13,hand waving 14,handshaking 15,hopping (one foot jumping)
16,hugging other person 17,jump up 18,kicking other person 19,kicking something
20,make a phone call/answer phone 21,pat on back of other person 22,pickup 23,playing with phone/tablet
24,point finger at the other person 25,pointing to something with finger 26,punching/slapping other person
27,pushing other person 28,put on a hat/cap 29,put something inside pocket 30,reading
31,rub two hands together 32,salute 33,sitting down 34,standing up 35,take off a hat/cap 36,take off glasses
37,take off jacket 38,take out something from pocket 39,taking a selfie 40,tear up paper 41,throw
42,touch back (backache) 43,touch chest (stomachache/heart pain) 44,touch head (headache)
45,touch neck (neckache) 46,typing on a keyboard 47,use a fan (with hand or paper)/feeling warm
48,wear jacket 49,wear on glasses 50,wipe face 51,writing"""


def _readme_names() -> dict[int, str]:
    entries = re.findall(r"A(\d+)\.\s+(.+?)\.(?:\s+\.)?(?=\s+A\d+\.|\s*$)", " ".join(NTU_README.split("\n")))
    return {int(k): name.replace("’", "'").strip() for k, name in entries}


def test_ntu120_names_are_the_readme_list():
    readme = _readme_names()
    assert sorted(readme) == list(range(1, 121))
    assert list(NTU120_CLASS_NAMES) == [readme[k] for k in range(1, 121)]


@pytest.mark.skipif(not NTU_NAMES_FILE.is_file(), reason=f"{NTU_NAMES_FILE} not found")
def test_ntu60_names_match_the_shared_copy():
    # The shared copy has two blank lines after A043, a stray '#' after A052 and ends at A058: its names, in
    # order, must be ours.
    lines = [line.strip().rstrip("#") for line in NTU_NAMES_FILE.read_text().splitlines() if line.strip()]
    assert len(lines) >= 58
    assert lines == list(NTU120_CLASS_NAMES[:len(lines)])


def test_pku_names_are_the_actions_xlsx_list():
    entries = dict(re.findall(r"(\d+),(.+?)(?=\s+\d+,|$)", " ".join(PKU_ACTIONS_XLSX.split("\n"))))
    assert [entries[str(k)] for k in range(1, 52)] == list(PKU_ACTION_NAMES)
    assert list(PKU_ACTION_NAMES) == sorted(PKU_ACTION_NAMES)  # the sheet lists them alphabetically
    shared_with_ntu = set(PKU_ACTION_NAMES) & set(NTU120_CLASS_NAMES)
    assert len(shared_with_ntu) >= 40  # the same recording protocol: most names are NTU's, word for word


def test_pku_part2_has_the_41_daily_actions():
    assert len(ACTION_IDS[1]) == 51 and len(ACTION_IDS[2]) == 41
    absent = [PKU_ACTION_NAMES[i - 1] for i in sorted(set(ACTION_IDS[1]) - set(ACTION_IDS[2]))]
    two_person = [n for n in absent if "other person" in n or n == "handshaking"]
    assert len(two_person) == 8 and set(absent) - set(two_person) == {"put something inside pocket",
                                                                      "take out something from pocket"}
    assert class_names(2)[11] == "hand waving"  # id 13, the 12th of part II's ids


def test_split_file_in_the_published_layout(tmp_path):
    # As distributed: a header line, the names comma-separated on one line with a trailing comma, the
    # misspelt "Validataion" header, the test names.
    path = tmp_path / "cross_subject_v2.txt"
    path.write_text("Training videos: \n0002-L, 0002-M, 0002-R, 0003-L,\nValidataion videos: \n0291-L, 0291-M,\n")
    train, test = read_split_list(path)
    assert train == {"0002-L", "0002-M", "0002-R", "0003-L"} and test == {"0291-L", "0291-M"}


def _download(tmp_path: Path, instances: dict[str, int], part: int) -> tuple[Path, Path, Path]:
    raw, labels, split = tmp_path / "raw", tmp_path / "labels", tmp_path / "split"
    for d in (raw, labels, split):
        d.mkdir()
    for video, n in instances.items():
        (raw / f"{video}.txt").write_text(("0.5 " * 150 + "\n") * n)
        (labels / f"{video}.txt").write_text("".join(f"{ACTION_IDS[part][k % 41]},{k},{k},1\n" for k in range(n)))
    (split / "cross_subject_v2.txt").write_text("Training videos:\nA01N01-L, A01N01-M,\nValidataion videos:\n"
                                                "A02N01-L,\n")
    return raw, labels, split


def test_split_counts_are_compared_with_the_published_ones(tmp_path, monkeypatch):
    """With every listed video present, the prepared counts are compared with PUBLISHED_COUNTS and the result is
    printed; here the published numbers are scaled down to a download of three videos."""
    raw, labels, split = _download(tmp_path, {"A01N01-L": 3, "A01N01-M": 2, "A02N01-L": 4}, part=2)
    monkeypatch.setattr(pkummd, "PUBLISHED_COUNTS", {(2, "xsub"): (5, 4)})
    trimmed, _ = prepare_pkummd(raw, labels, tmp_path / "out", part=2, split_dir=split, progress=False)
    assert trimmed.notes == ["xsub: 5 train / 4 test instances matches the published 5 / 4"]
    assert "check: xsub: 5 train / 4 test instances matches" in trimmed.table()
    monkeypatch.setattr(pkummd, "PUBLISHED_COUNTS", {(2, "xsub"): (5332, 1613)})
    trimmed, _ = prepare_pkummd(raw, labels, tmp_path / "out", part=2, split_dir=split, progress=False)
    assert trimmed.notes == ["xsub: 5 train / 4 test instances DIFFERS from the published 5332 / 1613"]
    (raw / "A02N01-L.txt").unlink()  # an incomplete download: no comparison
    trimmed, _ = prepare_pkummd(raw, labels, tmp_path / "out", part=2, split_dir=split, progress=False)
    assert trimmed.notes == []


def test_published_counts_are_the_cited_ones():
    assert pkummd.PUBLISHED_COUNTS == {(2, "xsub"): (5332, 1613)}  # A2MC paper, PKU-II cross-subject
    assert pkummd.PUBLISHED_TOTALS == {1: (1076, 21545)}  # PKU-MMD README: 1,076 videos, 21,545 actions


def test_part1_total_is_compared_when_every_video_is_there(tmp_path, monkeypatch):
    raw, labels, split = _download(tmp_path, {"A01N01-L": 3, "A01N01-M": 2, "A02N01-L": 4}, part=1)
    (split / "cross_subject_v2.txt").rename(split / "cross-subject.txt")
    monkeypatch.setattr(pkummd, "PUBLISHED_TOTALS", {1: (3, 9)})
    trimmed, untrimmed = prepare_pkummd(raw, labels, tmp_path / "out", part=1, split_dir=split, progress=False)
    assert trimmed.notes == ["9 instances in 3 videos matches the published 9"] and untrimmed.notes == []
    assert trimmed.splits == {"xsub": {"train": 5, "test": 4}}
