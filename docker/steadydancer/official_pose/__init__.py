"""SteadyDancer's own pose path for ComfyUI: its alignment, its augmented negative pose and
its separate pose guidance, reimplemented from MCG-NJU/SteadyDancer's description and
checked against numbers its code produced (tests/data/official_pose/)."""
