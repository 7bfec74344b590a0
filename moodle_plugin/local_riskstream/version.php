<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

/**
 * Version information for local_riskstream.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$plugin->component = 'local_riskstream';
$plugin->version   = 2026120202;
$plugin->requires  = 2024100700; // Moodle 4.5.
$plugin->supported = [405, 500];
$plugin->maturity  = MATURITY_BETA;
$plugin->release   = '0.2.0';
