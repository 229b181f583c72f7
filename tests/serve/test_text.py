"""Stop sequences: the text before the first one, and nothing sent that a stop could take back."""
from rnnkit.serve.text import ChoiceText


def feed(stop, pieces):
    c = ChoiceText(stop)
    sent, stopped = [], False
    for p in pieces:
        out, stopped = c.add(p)
        sent.append(out)
        if stopped:
            break
    return sent, stopped, c


def test_stop_spanning_pieces_cuts_before_it_and_nothing_of_it_is_sent():
    sent, stopped, _ = feed(["END"], ["ab", "cE", "N", "Dxyz"])
    assert stopped and "".join(sent) == "abc" and sent[:2] == ["", "ab"]  # the last 2 chars wait: they may start "END"


def test_a_near_miss_is_released_when_it_cannot_be_a_stop():
    sent, stopped, c = feed(["END"], ["E", "N", "x", "y"])
    assert not stopped and "".join(sent) + c.flush() == "ENxy"


def test_earliest_of_several_stops_wins_and_no_stop_sends_everything():
    assert "".join(feed(["zz", "b"], ["aazz", "b"])[0]) == "aa"
    sent, stopped, c = feed([], ["a", "b"])
    assert sent == ["a", "b"] and not stopped and c.flush() == ""
