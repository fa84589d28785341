"""The JWST data-quality bits bgdnoise reads (``stdatamodels.dqflags.pixel``).

Copied as numbers so that ``import bgdnoise`` stays free of stdatamodels; a
test checks them against stdatamodels.
"""

DO_NOT_USE = 1
SATURATED = 2
JUMP_DET = 4
NON_SCIENCE = 512
DEAD = 1024
HOT = 2048
MSA_FAILED_OPEN = 2**29
REFERENCE_PIXEL = 2**31

#: Bits that keep a pixel out of the statistics by default.
DEFAULT_DQ_FLAGS = DO_NOT_USE | NON_SCIENCE | REFERENCE_PIXEL | MSA_FAILED_OPEN
#: GROUPDQ bits that make a group difference of a ramp unusable.
GROUP_BAD = DO_NOT_USE | SATURATED | JUMP_DET
